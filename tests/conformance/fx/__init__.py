"""torch.fx conformance: cases from torch's test/test_fx.py run on torch.fx and graphlift.fx."""
