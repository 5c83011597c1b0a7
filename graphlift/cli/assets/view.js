// The graphlift program viewer: lays the graph out with dagre and draws it as SVG.
// Modules are clusters that collapse into one node; hover shows a node's details;
// the search box marks matching nodes (expanding the modules that hide them).
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("graph-data").textContent);
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const modules = new Set(data.nodes.flatMap((n) => n.module));
  const collapsed = new Set();
  const isLifted = (node) => node.op === "placeholder" && /^[pbc]_/.test(node.id);
  let query = "";
  let showWeights = false;
  let zoom = 1;

  // The innermost visible owner of a node: itself, or the outermost collapsed module around it.
  function visibleId(node) {
    for (const path of node.module) if (collapsed.has(path)) return "module:" + path;
    return node.id;
  }

  function parentModule(path) {
    // modules nest by their recorded stacks: the parent is the previous entry of any stack holding it
    for (const n of data.nodes) {
      const i = n.module.indexOf(path);
      if (i > 0) return n.module[i - 1];
      if (i === 0) return null;
    }
    return null;
  }

  function matches(node) {
    if (!query) return false;
    const text = (node.id + " " + node.target + " " + node.module.join(" ")).toLowerCase();
    return text.includes(query);
  }

  function element(tag, attributes, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function textWidth(s) { return Math.max(40, 7.6 * s.length + 18); }

  function layout() {
    const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
    g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 28, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    const clusters = new Set();
    const shown = (node) => showWeights || !isLifted(node);
    for (const node of data.nodes.filter(shown)) {
      const id = visibleId(node);
      if (id !== node.id) {
        const path = id.slice("module:".length);
        g.setNode(id, { kind: "module", path, label: path, value: "collapsed module",
                        width: textWidth(path), height: 38, match: (g.node(id) || {}).match || matches(node) });
        placeIn(g, id, parentModule(path), clusters);
        continue;
      }
      const lines = [node.label, node.value];
      g.setNode(id, { kind: node.op, node, label: node.label, value: node.value, match: matches(node),
                      width: Math.max(...lines.map(textWidth)), height: node.value ? 38 : 24 });
      placeIn(g, id, node.module[node.module.length - 1] || null, clusters);
    }
    for (const [a, b] of data.edges) {
      if (!shown(byId.get(a))) continue;
      const from = visibleId(byId.get(a)), to = visibleId(byId.get(b));
      if (from !== to) g.setEdge(from, to);
    }
    dagre.layout(g);
    return g;
  }

  function placeIn(g, id, path, clusters) {
    if (!path) return;
    const clusterId = "cluster:" + path;
    if (!clusters.has(clusterId)) {
      clusters.add(clusterId);
      g.setNode(clusterId, { kind: "cluster", path, label: path });
      placeIn(g, clusterId, parentModule(path), clusters);
    }
    g.setParent(id, clusterId);
  }

  function draw() {
    const g = layout();
    const canvas = document.getElementById("canvas");
    canvas.replaceChildren();
    const size = g.graph();
    const svg = element("svg", { width: (size.width + 20) * zoom, height: (size.height + 20) * zoom,
                                 viewBox: "0 0 " + (size.width + 20) + " " + (size.height + 20), role: "img" }, canvas);
    const marker = element("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
                                       markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
                           element("defs", {}, svg));
    element("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }, marker);
    const clusterIds = g.nodes().filter((id) => g.node(id).kind === "cluster");
    clusterIds.sort((a, b) => depth(g, a) - depth(g, b));
    for (const id of clusterIds) drawCluster(svg, g.node(id));
    for (const e of g.edges()) {
      const points = g.edge(e).points.map((p) => p.x + "," + p.y).join(" ");
      element("polyline", { class: "edge", points }, svg);
    }
    for (const id of g.nodes()) if (g.node(id).kind !== "cluster") drawNode(svg, id, g.node(id));
    document.documentElement.dataset.rendered = String(g.nodes().length);
    const count = data.nodes.filter(matches).length;
    document.getElementById("matches").textContent = query ? count + " match" + (count === 1 ? "" : "es") : "";
  }

  function depth(g, id) { let d = 0; while ((id = g.parent(id))) d++; return d; }

  function drawCluster(svg, box) {
    const group = element("g", { class: "cluster", "data-module": box.path }, svg);
    element("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height }, group);
    const label = element("text", { x: box.x - box.width / 2 + 6, y: box.y - box.height / 2 + 12 }, group);
    label.textContent = box.label + " \u25be";
    group.addEventListener("click", (event) => { event.stopPropagation(); collapsed.add(box.path); draw(); });
  }

  function drawNode(svg, id, box) {
    const lifted = box.node && isLifted(box.node);
    const classes = ["node", box.kind, lifted ? "lifted" : "", box.match ? "match" : ""].join(" ");
    const group = element("g", { class: classes, "data-id": id }, svg);
    element("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height }, group);
    const title = element("text", { x: box.x, y: box.y + (box.value ? -3 : 4), "text-anchor": "middle" }, group);
    title.textContent = box.label;
    if (box.value) {
      const value = element("text", { class: "value", x: box.x, y: box.y + 12, "text-anchor": "middle" }, group);
      value.textContent = box.value;
    }
    if (box.kind === "module") {
      group.addEventListener("click", () => { collapsed.delete(box.path); draw(); });
      return;
    }
    group.addEventListener("mousemove", (event) => showTooltip(event, box.node));
    group.addEventListener("mouseleave", hideTooltip);
  }

  function showTooltip(event, node) {
    const tooltip = document.getElementById("tooltip");
    const weights = data.edges.filter(([a, b]) => b === node.id && isLifted(byId.get(a))).map(([a]) => a);
    tooltip.textContent = [
      node.id + " = " + node.op + "[" + node.target + "]",
      "value:   " + (node.value || "-"),
      "module:  " + (node.module.length ? node.module[node.module.length - 1] : "-"),
      "source:  " + (node.source || "-"),
      "weights: " + (weights.join(", ") || "-"),
    ].join("\n");
    tooltip.hidden = false;
    tooltip.style.left = Math.min(event.clientX + 14, window.innerWidth - 660) + "px";
    tooltip.style.top = event.clientY + 14 + "px";
  }

  function hideTooltip() { document.getElementById("tooltip").hidden = true; }

  document.getElementById("search").addEventListener("input", (event) => {
    query = event.target.value.trim().toLowerCase();
    for (const node of data.nodes) if (matches(node)) for (const path of node.module) collapsed.delete(path);
    draw();
    const first = document.querySelector(".node.match");
    if (first) first.scrollIntoView({ block: "center", inline: "center" });
  });
  document.getElementById("weights").addEventListener("change", (event) => {
    showWeights = event.target.checked;
    draw();
  });
  document.getElementById("zoom-in").addEventListener("click", () => { zoom *= 1.25; draw(); });
  document.getElementById("zoom-out").addEventListener("click", () => { zoom /= 1.25; draw(); });
  document.getElementById("expand-all").addEventListener("click", () => { collapsed.clear(); draw(); });
  document.getElementById("collapse-all").addEventListener("click", () => {
    for (const path of modules) if (parentModule(path) === null) collapsed.add(path);
    draw();
  });
  // Large programs open with their modules below the top level collapsed.
  if (data.nodes.length > 80) {
    for (const path of modules) if (parentModule(path) !== null) collapsed.add(path);
  }
  // page.html#q=linear opens with a search (links can point at nodes)
  const hash = new URLSearchParams(window.location.hash.slice(1));
  if (hash.get("q")) {
    const box = document.getElementById("search");
    box.value = hash.get("q");
    box.dispatchEvent(new Event("input"));
  } else {
    draw();
  }
})();
