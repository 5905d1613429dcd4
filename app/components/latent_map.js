// The latent map: one or two Plotly scatter plots of every image, drawn and driven in the
// browser. Hover, zoom, pan and the rings of a selection never wait for the server; only a
// click or a finished box/lasso selection is sent to Python, once, as a trigger.
//
// The heavy arrays (coordinates, per-image values, every image's pixels) arrive as static files,
// fetched once per browser and kept in memory; each rerun only sends the small `data` below.
// data = {plotly, images, labels, classes, n_train, maps: [{name, url, has_recon}], clusters,
//         colour, ringed, point, focus, highlight, size, opacity, height, present, palette}

const cache = new Map(); // url -> Promise of an ArrayBuffer, shared by every map on the page

function fetchBuffer(url, gzipped) {
  if (!cache.has(url)) {
    cache.set(url, fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      if (!gzipped) return response.arrayBuffer();
      const plain = response.body.pipeThrough(new DecompressionStream("gzip"));
      return new Response(plain).arrayBuffer();
    }));
  }
  return cache.get(url);
}

function loadPlotly(url) {
  if (!window.__latentLabPlotly) {
    window.__latentLabPlotly = window.Plotly ? Promise.resolve(window.Plotly) : new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error(`could not load ${url}`));
      document.head.appendChild(script);
    });
  }
  return window.__latentLabPlotly;
}

function setup(root) {
  root.innerHTML = `
    <div class="ll-maps"></div>
    <div class="ll-status" data-testid="ll-status">Loading the map…</div>
    <div class="ll-thumb" data-testid="ll-thumb" hidden>
      <canvas width="28" height="28"></canvas><div class="ll-thumb-text"></div>
    </div>`;
  return {
    maps: root.querySelector(".ll-maps"), status: root.querySelector(".ll-status"),
    thumb: root.querySelector(".ll-thumb"), plots: [], signature: null, ringKey: null,
    focusToken: null, pixels: null, labels: null, setTrigger: null, data: null,
  };
}

// ---- colouring: one trace per group, so the legend names classes, splits or clusters ----

function groupsFor(data, arrays, labels, clusters) {
  const n = labels.length;
  const index = (keep) => {
    const out = [];
    for (let i = 0; i < n; i++) if (keep(i)) out.push(i);
    return Int32Array.from(out);
  };
  if (data.colour === "split") {
    return [["train", index((i) => i < data.n_train), data.palette[0]],
            ["test", index((i) => i >= data.n_train), data.palette[3]]];
  }
  if (data.colour === "swav_cluster" && clusters) {
    const groups = [];
    const count = Math.max(...clusters) + 1;
    for (let c = 0; c < count; c++) {
      const members = index((i) => clusters[i] === c);
      if (members.length) groups.push([`cluster ${c}`, members, data.cluster_palette[c % data.cluster_palette.length]]);
    }
    return groups;
  }
  return data.classes.map((name, c) => [name, index((i) => labels[i] === c), data.palette[c % data.palette.length]]);
}

function tracesFor(data, arrays, labels, clusters) {
  const { x, y, recon } = arrays;
  const marker = { size: data.size, opacity: data.opacity };
  const dim = data.highlight !== null && data.highlight !== undefined;
  const traces = [];
  if (data.colour === "recon_error" && recon) {
    const all = Int32Array.from({ length: x.length }, (_, i) => i);
    traces.push({
      type: "scattergl", mode: "markers", name: "images", x, y, customdata: all, hoverinfo: "none",
      marker: { ...marker, opacity: dim ? 0.08 : data.opacity, color: recon, colorscale: "Viridis", showscale: true,
                colorbar: { title: { text: "nats" } } },
    });
  } else {
    for (const [name, members, colour] of groupsFor(data, arrays, labels, clusters)) {
      traces.push({
        type: "scattergl", mode: "markers", name, hoverinfo: "none", customdata: members,
        x: Float32Array.from(members, (i) => x[i]), y: Float32Array.from(members, (i) => y[i]),
        marker: { ...marker, color: colour, opacity: dim ? 0.08 : data.opacity },
      });
    }
  }
  if (dim) { // every image of one class drawn on top, the rest faded
    const members = Int32Array.from(Array.from(labels.keys()).filter((i) => labels[i] === data.highlight));
    traces.push({
      type: "scattergl", mode: "markers", name: `${data.classes[data.highlight]} (highlighted)`, hoverinfo: "none",
      customdata: members, x: Float32Array.from(members, (i) => x[i]), y: Float32Array.from(members, (i) => y[i]),
      marker: { size: data.size + 1, color: data.palette[data.highlight % data.palette.length], opacity: 0.95 },
    });
  }
  return traces;
}


function layoutFor(data, title, revision) {
  const font = data.present ? 24 : 13;
  return {
    height: data.height, margin: { l: 0, r: 0, t: title ? 8 + font * 1.6 : 8, b: 0 },
    dragmode: "pan", hovermode: "closest", uirevision: revision, selectionrevision: revision,
    font: { size: font }, title: title ? { text: title, font: { size: font } } : undefined,
    legend: { itemsizing: "constant", font: { size: font }, y: 0.5, yanchor: "middle" },
    xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  };
}

// ---- hover: the image under the cursor, drawn from pixels already in the browser ----

function showThumb(state, index, event) {
  const { thumb, pixels, data } = state;
  const side = 28;
  const canvas = thumb.querySelector("canvas");
  if (pixels) {
    const image = canvas.getContext("2d").createImageData(side, side);
    const offset = index * side * side;
    for (let p = 0; p < side * side; p++) {
      const v = pixels[offset + p];
      image.data.set([v, v, v, 255], p * 4);
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
  }
  canvas.hidden = !pixels;
  const split = index >= data.n_train ? "test" : "train";
  thumb.querySelector(".ll-thumb-text").textContent =
    `#${index} ${data.classes[state.labels[index]]} (${split})${pixels ? "" : " · images loading…"}`;
  thumb.dataset.index = String(index);
  thumb.hidden = false;
  const bounds = state.root.getBoundingClientRect ? state.root.getBoundingClientRect() : { left: 0, top: 0 };
  thumb.style.left = `${event.clientX - bounds.left + 16}px`;
  thumb.style.top = `${event.clientY - bounds.top + 16}px`;
}

function indicesOf(points) {
  const seen = new Set();
  for (const p of points || []) seen.add(Number(p.customdata));
  return Array.from(seen);
}

// The rings of the selected (or clicked) images are drawn on a 2-D canvas laid over each plot,
// not as a Plotly trace: restyling a trace redraws all 70k WebGL points, which costs seconds in a
// software renderer; redrawing a few thousand circles costs milliseconds.
function ring(state, indices) {
  state.ringed = Int32Array.from(indices);
  for (const plot of state.plots) drawRings(state, plot);
}

function drawRings(state, plot) {
  const div = plot.div, layout = div._fullLayout;
  if (!layout || !layout.xaxis || !plot.arrays) return;
  if (!plot.canvas) {
    plot.canvas = document.createElement("canvas");
    plot.canvas.className = "ll-rings";
    div.appendChild(plot.canvas);
  }
  const canvas = plot.canvas, ratio = window.devicePixelRatio || 1, size = layout._size;
  canvas.style.left = `${size.l}px`;
  canvas.style.top = `${size.t}px`;
  canvas.style.width = `${size.w}px`;
  canvas.style.height = `${size.h}px`;
  canvas.width = Math.round(size.w * ratio);
  canvas.height = Math.round(size.h * ratio);
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  context.strokeStyle = "#e4002b";
  // One clicked image gets a bold ring; a selection of many gets fine ones, so a dense cluster
  // stays legible instead of turning into a red blob.
  const many = (state.ringed || []).length > 50;
  context.lineWidth = (state.data.present ? 2.5 : 1.5) / (many ? 1.5 : 1);
  const radius = many ? state.data.size / 2 + 2.5 : (state.data.size + 7) / 2;
  const { x, y } = plot.arrays;
  context.beginPath();
  for (const i of state.ringed || []) {
    const px = layout.xaxis.l2p(x[i]), py = layout.yaxis.l2p(y[i]);
    if (px < -radius || py < -radius || px > size.w + radius || py > size.h + radius) continue;
    context.moveTo(px + radius, py);
    context.arc(px, py, radius, 0, 2 * Math.PI);
  }
  context.stroke();
  div.dataset.ringed = String((state.ringed || []).length);
}

const EVENTS = ["plotly_hover", "plotly_unhover", "plotly_click", "plotly_selected", "plotly_deselect",
                "plotly_afterplot", "plotly_relayouting"];

// (Re)attach the map's handlers. Called after every render: some Plotly updates drop a plot's
// event listeners (a second box selection after a click went unheard), so none is trusted to last.
function wire(state, plot) {
  const div = plot.div;
  plot.emitter = div._ev; // Plotly's emitter: a new one means Plotly dropped our listeners
  for (const name of EVENTS) div.removeAllListeners(name);
  div.on("plotly_hover", (event) => {
    const p = event.points && event.points[0];
    if (p) showThumb(state, Number(p.customdata), event.event);
  });
  div.on("plotly_unhover", () => { state.thumb.hidden = true; });
  div.on("plotly_afterplot", () => drawRings(state, plot));
  div.on("plotly_relayouting", () => drawRings(state, plot)); // while panning or zooming
  div.on("plotly_click", (event) => {
    const p = event.points && event.points[0];
    if (!p) return;
    const index = Number(p.customdata);
    performance.mark("latent-map:clicked");
    state.setTrigger("click", index); // first: the server's answer need not wait for the rings
    ring(state, [index]);
  });
  div.on("plotly_selected", (event) => {
    if (!event) return; // a click in select mode, not a finished gesture
    performance.mark("latent-map:selected"); // for browser benchmarks: when the gesture ended
    if (state.clearing) return;
    const chosen = indicesOf(event.points);
    state.sentKey = JSON.stringify(chosen.slice(0, state.data.max_ringed));
    state.setTrigger("selection", chosen);
    ring(state, chosen.slice(0, state.data.max_ringed));
    // The rings now show the selection. Plotly's outline would stay editable, catch the next
    // hover or drag inside it, and keep the other points dimmed: take it away.
    setTimeout(() => clearOutlines(state), 0);
  });
  div.on("plotly_deselect", () => {
    if (state.clearing) return; // our own clearOutlines, not the user's double-click
    state.sentKey = "[]";
    ring(state, []);
    state.setTrigger("selection", []);
  });
  if (!plot.leaveWired) {
    div.addEventListener("mouseleave", () => { state.thumb.hidden = true; });
    // Switching tools after some updates makes Plotly drop every listener of the plot (seen:
    // select → pan → click → select). Before any gesture can finish, check and re-attach.
    const rewire = () => {
      const emitter = div._ev;
      if (emitter && (emitter !== plot.emitter || emitter.listeners("plotly_selected").length === 0)) wire(state, plot);
    };
    div.addEventListener("pointerdown", rewire, true);
    div.addEventListener("pointermove", rewire, true);
    plot.leaveWired = true;
  }
}

async function clearOutlines(state) {
  state.clearing = true;
  try {
    for (const plot of state.plots) {
      if ((plot.div.layout.selections || []).length) {
        // One update, so one redraw: the outline goes, and the points are undimmed.
        await window.Plotly.update(plot.div, { selectedpoints: [null] }, { selections: [] });
      }
    }
  } finally {
    state.clearing = false;
  }
}

function focusOn(state, index) {
  for (const plot of state.plots) {
    const { x, y } = plot.arrays;
    const span = (arr) => { let lo = Infinity, hi = -Infinity; for (const v of arr) { if (v < lo) lo = v; if (v > hi) hi = v; } return hi - lo; };
    const half = Math.max(span(x), span(y)) / 10;
    window.Plotly.relayout(plot.div, { "xaxis.range": [x[index] - half, x[index] + half],
                                       "yaxis.range": [y[index] - half, y[index] + half] });
  }
}

async function render(state) {
  const data = state.data;
  const Plotly = await loadPlotly(data.plotly);
  const [labelBuffer, clusterBuffer, ...mapBuffers] = await Promise.all([
    fetchBuffer(data.labels), data.clusters ? fetchBuffer(data.clusters) : null,
    ...data.maps.map((m) => fetchBuffer(m.url))]);
  if (state.data !== data) return; // a newer rerun arrived while fetching
  state.labels = new Uint8Array(labelBuffer);
  const clusters = clusterBuffer ? new Uint8Array(clusterBuffer) : null;
  const n = state.labels.length;

  // Rebuild the plots only when what they draw changed; otherwise only restyle.
  const signature = JSON.stringify([data.maps, data.colour, data.highlight, data.size, data.opacity,
                                    data.height, data.present]);
  if (signature !== state.signature) {
    state.signature = signature;
    const names = data.maps.map((m) => m.name);
    if (state.plots.length !== data.maps.length || state.plots.some((p, i) => p.name !== names[i])) {
      for (const plot of state.plots) Plotly.purge(plot.div);
      state.maps.innerHTML = "";
      state.maps.style.gridTemplateColumns = `repeat(${data.maps.length}, 1fr)`;
      state.plots = data.maps.map((m) => {
        const div = document.createElement("div");
        div.className = "ll-plot";
        div.dataset.model = m.name;
        state.maps.appendChild(div);
        return { name: m.name, div, arrays: null };
      });
      state.ringKey = null;
    }
    data.maps.forEach((m, i) => {
      const all = new Float32Array(mapBuffers[i]); // x of every image, then y, then its error
      state.plots[i].arrays = { x: all.subarray(0, n), y: all.subarray(n, 2 * n),
                                recon: m.has_recon ? all.subarray(2 * n, 3 * n) : null };
    });
    for (const [i, plot] of state.plots.entries()) {
      const title = data.maps.length > 1 ? plot.name : null;
      const traces = tracesFor(data, plot.arrays, state.labels, clusters);
      // Side by side, one legend (the right-hand map's) names the colours of both.
      if (i < state.plots.length - 1) for (const trace of traces) { trace.showlegend = false; if (trace.marker.showscale) trace.marker.showscale = false; }
      await Plotly.react(plot.div, traces,
                         layoutFor(data, title, `${plot.name}`),
                         { displaylogo: false, responsive: true, scrollZoom: true,
                           modeBarButtonsToRemove: ["toImage", "autoScale2d", "zoomIn2d", "zoomOut2d"] });
      plot.div.dataset.drawn = "1"; // the browser benchmark waits for this
    }
    state.ringKey = null;
  }
  const ringKey = JSON.stringify(data.ringed);
  if (ringKey !== state.ringKey) {
    state.ringKey = ringKey;
    if (ringKey !== state.sentKey) ring(state, data.ringed); // our own selection is ringed already
    // Rings that did not come from this map's own box or lasso (a click, "Clear", "Go to") retire
    // the old selection's outline, which would otherwise catch the next drag as an edit of itself.
    if (ringKey !== state.sentKey) await clearOutlines(state);
  }
  for (const plot of state.plots) wire(state, plot);
  if (data.focus && data.focus.token !== state.focusToken) {
    state.focusToken = data.focus.token;
    focusOn(state, data.focus.index);
  }
  state.status.textContent = state.pixels ? "" : "Loading the images for hover…";
  state.root.dataset.ready = "true";
}

export default function (component) {
  const { parentElement, data, setTriggerValue } = component;
  const root = parentElement.querySelector(".ll-root") || parentElement;
  if (!root.__latentMap) {
    root.__latentMap = setup(root);
    root.__latentMap.root = root;
  }
  const state = root.__latentMap;
  state.data = data;
  state.setTrigger = setTriggerValue;
  if (!state.pixelsFor || state.pixelsFor !== data.images) {
    state.pixelsFor = data.images;
    state.pixels = null;
    fetchBuffer(data.images, true).then((buffer) => {
      if (state.pixelsFor !== data.images) return;
      state.pixels = new Uint8Array(buffer);
      state.status.textContent = "";
      root.dataset.images = "ready";
    });
  }
  render(state).catch((error) => {
    state.status.textContent = `The map could not be drawn: ${error.message}`;
  });
}
