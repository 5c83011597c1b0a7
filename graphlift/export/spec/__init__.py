"""The dynamic-shape spec: ``Dim`` (graphlift's, and torch's recognised by structure), derived dims, ``ShapesCollection``, ``AdditionalInputs``, and matching a spec to the flat inputs."""
