// The latent explorer: every picture comes from the service's HTTP API (no build step, no
// dependencies). Panels: a generated grid (its seed in the URL), sliders on the principal
// axes of the training codes (or the raw dimensions), a drawing canvas followed through the
// model, an interpolation strip, and the model's facts.

const GRID_COUNT = 32;
const SLIDER_LIMIT = 4; // sliders span ±4 (σ units on principal axes, raw units otherwise)
const BAR_LIMIT = 4; // the μ ± σ bars span ±4
const DRAW_PAUSE_MS = 250; // encode a drawing this long after the last stroke
const SEED_TYPING_MS = 400;

const $ = (id) => document.getElementById(id);
const state = {
  model: null,
  axes: null, // {mean, axes, stddev} or null
  mode: "principal",
  z: null, // the sliders' code (Float64Array)
  coords: null, // z in the current mode's coordinates
  grid: null, // the last /v1/generate answer
  drawing: null, // the last /v1/reconstruct answer for the canvas
  ends: { a: null, b: null }, // {z, label, prior}
};

// --- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function describe(detail) {
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  }
  return String(detail);
}

// A service started with API keys (VAE_API_KEYS_FILE) asks for one: the page asks the user,
// keeps it for this tab only, and sends it with every request.
const KEY_STORE = "vae-digits-api-key";
let apiKey = sessionStorage.getItem(KEY_STORE);

function askForKey(message) {
  $("key-message").textContent = message;
  $("key-form").hidden = false;
  $("key-input").focus();
}

function setUpKeyForm() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key-input").value.trim();
    sessionStorage.setItem(KEY_STORE, apiKey);
    $("key-input").value = "";
    $("key-form").hidden = true;
    loadModel();
  });
}

async function api(path, { json, form, accept = "application/json" } = {}) {
  const init = { method: json || form ? "POST" : "GET", headers: { Accept: accept } };
  if (apiKey) init.headers.Authorization = `Bearer ${apiKey}`;
  if (json) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    askForKey(apiKey ? "That key was refused: the service needs another one."
      : "This service needs an API key.");
    throw new ApiError(401, "an API key is needed");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = describe((await response.json()).detail);
    } catch (ignored) { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, message);
  }
  return accept === "image/png" ? response.blob() : response.json();
}

let statusTimer = null;
function showStatus(message, sticky = false) {
  const box = $("status");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(statusTimer);
  if (!sticky) statusTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

function reportError(error) {
  showStatus(error instanceof ApiError ? error.message : `Error: ${error.message}`);
}

const png = (base64) => `data:image/png;base64,${base64}`;

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// --- latent coordinates ---------------------------------------------------------------------

const dot = (a, b) => a.reduce((sum, v, i) => sum + v * b[i], 0);

function toCoords(z) {
  if (state.mode === "raw" || !state.axes) return Float64Array.from(z);
  const { mean, axes, stddev } = state.axes;
  const centred = z.map((v, i) => v - mean[i]);
  return Float64Array.from(axes, (axis, k) => dot(axis, centred) / stddev[k]);
}

function fromCoords(coords) {
  if (state.mode === "raw" || !state.axes) return Float64Array.from(coords);
  const { mean, axes, stddev } = state.axes;
  const z = Float64Array.from(mean);
  axes.forEach((axis, k) => axis.forEach((a, i) => { z[i] += coords[k] * stddev[k] * a; }));
  return z;
}

// --- model facts ----------------------------------------------------------------------------

async function loadModel() {
  try {
    state.model = await api("/v1/model");
  } catch (error) {
    if (error.status === 401) return; // the key form is shown; submitting it loads again
    showStatus(`${error.message} (trying again)`, true);
    setTimeout(loadModel, 3000);
    return;
  }
  $("status").hidden = true;
  const model = state.model;
  state.axes = model.latent_axes || null;
  $("model-line").textContent = `version ${model.version} · ${model.device} · preset ` +
    `${model.preset} · ${model.latent_dim}-dimensional codes`;
  renderFacts(model);
  setUpDigitButtons(model.supports_digit);
  setUpSliders();
  setUpWalk();
  await generate();
  loadPictures();
  document.body.dataset.ready = "true";
}

// The figures the evaluation exports, as the README's results table names them.
const FIGURES = [
  ["test_neg_elbo", "test −ELBO (nats)"],
  ["test_reconstruction", "  reconstruction term (nats)"],
  ["test_kl", "  KL term (nats)"],
  ["test_nll_iwae_k1000", "test NLL bound, IWAE k=1000 (nats)"],
  ["test_nll_iwae", "test NLL bound, IWAE (nats)"],
  ["active_units", "active latent units"],
  ["sample_confident_share", "samples with confidence > 0.9", true],
  ["sample_inception_score", "Inception-style score (10 at best)"],
  ["sample_frechet_distance", "Fréchet distance to test set"],
  ["reconstruction_class_kept", "reconstructions keeping their class", true],
  ["digit_accuracy_min", "asked digit, worst digit", true],
];

function fmt(value, digits = 2) {
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString("en") : value.toFixed(digits);
}

function renderFacts(model) {
  const facts = [
    ["version", model.version],
    ["device", `${model.device} (${model.device_name})`],
    ["preset", model.preset],
    ["latent dimensions", model.latent_dim],
    ["prior", `${model.prior.kind}, ${model.prior.components} components`],
    ["trained", `${model.epochs} epochs in ${fmt(model.training_seconds, 0)} s`],
    ["training digits", fmt(model.dataset.train_examples)],
    ["created", model.created_at.replace("T", " ").slice(0, 16)],
    ["TensorFlow", model.tensorflow_version],
  ];
  $("facts").replaceChildren(...facts.flatMap(([name, value]) => [
    element("dt", { textContent: name }), element("dd", { textContent: String(value) }),
  ]));
  const figures = { ...model.metrics, ...(model.evaluation || {}) };
  const rows = FIGURES.filter(([key]) => typeof figures[key] === "number")
    .filter(([key], i, all) => !(key === "test_nll_iwae" && all.some(([k]) => k.startsWith(
      "test_nll_iwae_k"))))
    .map(([key, label, percent]) => [label, percent ? `${(100 * figures[key]).toFixed(1)}%`
      : fmt(figures[key])]);
  // The literature's scale (binarized MNIST, training/protocol.py), when it was computed.
  const binarized = figures.binarized;
  if (binarized && typeof binarized.nll === "number") {
    rows.unshift([`test NLL, binarized MNIST, IWAE k=${fmt(binarized.k)} on ${fmt(
      binarized.examples)} digits (nats)`, `${fmt(binarized.nll)} ± ${fmt(binarized.stderr)}`]);
  }
  $("figures").replaceChildren(
    element("caption", {}, ["Test figures (", element("a", {
      href: jsonUrl(model), textContent: "all of them", target: "_blank", rel: "noopener" }),
    ")"]),
    ...rows.map(([label, value]) => element("tr", {}, [
      element("th", { textContent: label, scope: "row" }),
      element("td", { textContent: value }),
    ])),
  );
}

// What the page shows of the API opens as a blob: a new tab would not send the API key.
function jsonUrl(value) {
  return URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)],
    { type: "application/json" }));
}

async function loadPictures() {
  try {
    const { version, pictures } = await api("/v1/model/report");
    const blobs = await Promise.all(pictures.map((name) => api(
      `/v1/model/report/${encodeURIComponent(name)}?version=${version}`,
      { accept: "image/png" })));
    $("pictures").replaceChildren(...pictures.map((name, i) => {
      const url = URL.createObjectURL(blobs[i]);
      const label = name.replace(/\.png$/, "").replaceAll("_", " ");
      return element("a", { href: url, target: "_blank", rel: "noopener" }, [
        element("figure", {}, [
          element("img", { src: url, alt: label }),
          element("figcaption", { textContent: label }),
        ]),
      ]);
    }));
  } catch (error) {
    reportError(error);
  }
}

// --- the generated grid (its seed, temperature and digit in the URL) -------------------------

function gridSettings() {
  const params = new URLSearchParams(location.search);
  const seed = Number.parseInt(params.get("seed"), 10);
  const temperature = Number.parseFloat(params.get("temperature"));
  const digit = Number.parseInt(params.get("digit"), 10);
  return {
    seed: Number.isInteger(seed) && seed >= 0 ? seed : randomSeed(),
    temperature: Number.isFinite(temperature) && temperature >= 0 && temperature <= 1.5
      ? temperature : 1,
    digit: Number.isInteger(digit) && digit >= 0 && digit <= 9 ? digit : null,
  };
}

const randomSeed = () => Math.floor(Math.random() * 2 ** 31);
const grid = gridSettings();

function setUpDigitButtons(supported) {
  if (!supported) grid.digit = null; // a shared address may ask what this model cannot do
  const choices = [null, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  $("digit-buttons").replaceChildren(...choices.map((digit) => {
    const button = element("button", {
      type: "button", textContent: digit === null ? "any" : String(digit),
      disabled: digit !== null && !supported,
      title: supported ? "" : "This model has no per-digit prior",
    });
    button.dataset.digit = digit === null ? "" : String(digit);
    button.addEventListener("click", () => { grid.digit = digit; generate(); });
    return button;
  }));
  $("seed").value = grid.seed;
  $("temperature").value = grid.temperature;
  $("temperature-value").value = grid.temperature.toFixed(2);
}

async function generate() {
  const body = { count: GRID_COUNT, seed: grid.seed, temperature: grid.temperature };
  if (grid.digit !== null) body.digit = grid.digit;
  for (const button of $("digit-buttons").children) {
    button.setAttribute("aria-pressed", String(button.dataset.digit === String(grid.digit ?? "")));
  }
  const params = new URLSearchParams({ seed: grid.seed, temperature: grid.temperature });
  if (grid.digit !== null) params.set("digit", grid.digit);
  history.replaceState(null, "", `?${params}`);
  $("share").href = `?${params}`;
  let answer;
  try {
    answer = await api("/v1/generate", { json: body });
  } catch (error) {
    reportError(error);
    return;
  }
  state.grid = answer;
  const label = (i) => `grid digit ${i + 1} (seed ${answer.seed}${
    answer.digit === null ? "" : `, digit ${answer.digit}`})`;
  $("grid").replaceChildren(...answer.images.map((image, i) => {
    const button = element("button", { type: "button", title: `Explore ${label(i)}` }, [
      element("img", { src: png(image), alt: label(i), width: 28, height: 28 }),
    ]);
    button.addEventListener("click", () => {
      for (const other of $("grid").children) other.classList.remove("selected");
      button.classList.add("selected");
      setCode(answer.latents[i]);
      $("sliders").scrollIntoView({ behavior: "smooth", block: "nearest" });
    });
    return button;
  }));
  $("grid").dataset.seed = String(answer.seed);
  if (!state.z) setCode(answer.latents[0]);
  if (!state.ends.a && !state.ends.b) {
    state.ends.a = { z: answer.latents[0], label: label(0), prior: true };
    state.ends.b = { z: answer.latents[1], label: label(1), prior: true };
    interpolate();
  }
}

function setUpGridControls() {
  const regenerate = debounce(generate, SEED_TYPING_MS);
  $("seed").addEventListener("input", () => {
    const seed = Number.parseInt($("seed").value, 10);
    if (Number.isInteger(seed) && seed >= 0) {
      grid.seed = seed;
      regenerate();
    }
  });
  $("new-seed").addEventListener("click", () => {
    grid.seed = randomSeed();
    $("seed").value = grid.seed;
    generate();
  });
  $("temperature").addEventListener("input", () => {
    grid.temperature = Number.parseFloat($("temperature").value);
    $("temperature-value").value = grid.temperature.toFixed(2);
    regenerate();
  });
}

// --- the sliders: live decoding -------------------------------------------------------------

function setUpSliders() {
  const principal = Boolean(state.axes);
  $("mode-principal").disabled = !principal;
  if (!principal) {
    state.mode = "raw";
    $("slider-hint").textContent = "This model was exported without its principal axes: " +
      "the sliders move the raw dimensions.";
  }
  buildSliders();
}

function buildSliders() {
  const count = state.model.latent_dim;
  const principal = state.mode === "principal";
  $("mode-principal").setAttribute("aria-pressed", String(principal));
  $("mode-raw").setAttribute("aria-pressed", String(!principal));
  $("slider-list").replaceChildren(...Array.from({ length: count }, (_, k) => {
    const name = principal ? `PC${k + 1}` : `z${k + 1}`;
    const input = element("input", {
      type: "range", min: -SLIDER_LIMIT, max: SLIDER_LIMIT, step: 0.05, value: 0,
    });
    input.setAttribute("aria-label", principal
      ? `Principal axis ${k + 1}, in standard deviations` : `Latent dimension ${k + 1}`);
    input.dataset.index = String(k);
    const output = element("output", { value: "0.00" });
    input.addEventListener("input", () => {
      state.coords[k] = Number.parseFloat(input.value);
      output.value = state.coords[k].toFixed(2);
      state.z = fromCoords(state.coords);
      requestDecode();
      walkSoon();
    });
    const title = principal
      ? `principal axis ${k + 1}: σ = ${state.axes.stddev[k].toFixed(3)} (units: σ)`
      : `latent dimension ${k + 1}`;
    return element("label", { className: "slider", title }, [
      element("span", { className: "name", textContent: name }), input, output,
    ]);
  }));
  if (state.z) setCode(state.z);
}

function setCode(z) {
  walkSoon();
  state.z = Float64Array.from(z);
  state.coords = toCoords(state.z);
  for (const input of $("slider-list").querySelectorAll("input")) {
    const k = Number(input.dataset.index);
    input.value = String(state.coords[k]);
    input.nextElementSibling.value = state.coords[k].toFixed(2);
  }
  requestDecode();
}

// At most one decode in flight; moves made meanwhile are coalesced and the latest position
// is sent as soon as the answer arrives, so the digit follows the slider without a backlog.
const decoding = { busy: false, again: false, times: [], shown: 0, url: null };

function requestDecode() {
  if (decoding.busy) {
    decoding.again = true;
    return;
  }
  decodeNow();
}

async function decodeNow() {
  decoding.busy = true;
  decoding.again = false;
  $("decoded").dataset.busy = "true"; // until the latest position is shown (tests wait on it)
  const started = performance.now();
  try {
    const blob = await api("/v1/decode", {
      json: { latents: [Array.from(state.z, (v) => Number(v.toFixed(5)))] },
      accept: "image/png",
    });
    const elapsed = performance.now() - started;
    decoding.times.push(elapsed);
    if (decoding.times.length > 50) decoding.times.shift();
    const url = URL.createObjectURL(blob);
    const image = $("decoded");
    image.src = url;
    if (decoding.url) URL.revokeObjectURL(decoding.url);
    decoding.url = url;
    decoding.shown += 1;
    image.dataset.decodes = String(decoding.shown);
    const sorted = [...decoding.times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    image.dataset.times = decoding.times.map((t) => t.toFixed(1)).join(" ");
    $("decode-time").textContent = `decoded in ${elapsed.toFixed(0)} ms ` +
      `(median ${median.toFixed(0)} ms of ${sorted.length})`;
  } catch (error) {
    reportError(error);
  } finally {
    decoding.busy = false;
    if (decoding.again) decodeNow();
    else delete $("decoded").dataset.busy;
  }
}

function setUpSliderControls() {
  const switchTo = (mode) => {
    if (state.mode === mode) return;
    state.mode = mode;
    buildSliders();
  };
  $("mode-principal").addEventListener("click", () => switchTo("principal"));
  $("mode-raw").addEventListener("click", () => switchTo("raw"));
  $("reset").addEventListener("click", () => {
    setCode(state.axes ? state.axes.mean : new Array(state.model.latent_dim).fill(0));
  });
  $("randomize").addEventListener("click", () => {
    // A standard normal in the current coordinates: a typical training code.
    const coords = Float64Array.from({ length: state.model.latent_dim }, gaussian);
    setCode(fromCoords(coords));
  });
  $("slider-to-a").addEventListener("click", () => setEnd("a", state.z, "the sliders' digit"));
  $("slider-to-b").addEventListener("click", () => setEnd("b", state.z, "the sliders' digit"));
}

function gaussian() {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

// --- drawing: follow a digit through the model ---------------------------------------------

const pen = { drawing: false, strokes: 0, last: null };

function setUpCanvas() {
  const canvas = $("canvas");
  const context = canvas.getContext("2d");
  const clear = () => {
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    pen.strokes = 0;
  };
  clear();
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
      (event.clientY - box.top) * canvas.height / box.height];
  };
  const encodeSoon = debounce(encodeDrawing, DRAW_PAUSE_MS);
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    pen.drawing = true;
    pen.last = point(event);
    context.strokeStyle = "#fff";
    context.fillStyle = "#fff";
    context.lineWidth = canvas.width / 13;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.arc(...pen.last, context.lineWidth / 2, 0, 2 * Math.PI);
    context.fill();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!pen.drawing) return;
    const next = point(event);
    context.beginPath();
    context.moveTo(...pen.last);
    context.lineTo(...next);
    context.stroke();
    pen.last = next;
  });
  const stop = () => {
    if (!pen.drawing) return;
    pen.drawing = false;
    pen.strokes += 1;
    encodeSoon();
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("clear").addEventListener("click", () => {
    clear();
    state.drawing = null;
    renderDrawing();
  });
  $("draw-to-sliders").addEventListener("click", () => {
    setCode(state.drawing.mu[0]);
    $("sliders").scrollIntoView({ behavior: "smooth", block: "nearest" });
  });
  $("draw-to-a").addEventListener("click", () => setEnd("a", state.drawing.mu[0], "your drawing"));
  $("draw-to-b").addEventListener("click", () => setEnd("b", state.drawing.mu[0], "your drawing"));
  renderDrawing();
}

async function encodeDrawing() {
  if (pen.strokes === 0) return;
  const blob = await new Promise((resolve) => $("canvas").toBlob(resolve, "image/png"));
  const form = new FormData();
  form.append("file", blob, "drawing.png");
  try {
    state.drawing = await api("/v1/reconstruct", { form });
  } catch (error) {
    reportError(error);
    return;
  }
  renderDrawing();
}

function renderDrawing() {
  const answer = state.drawing;
  for (const id of ["draw-to-sliders", "draw-to-a", "draw-to-b"]) $(id).disabled = !answer;
  for (const [id, images] of [["preprocessed", "inputs"], ["reconstruction", "reconstructions"]]) {
    if (answer) $(id).src = png(answer[images][0]);
    else $(id).removeAttribute("src");
  }
  if (!answer) {
    $("score-value").textContent = "–";
    $("score-bar").style.width = "0";
    $("score-text").textContent = "Draw a digit to see how likely the model finds it.";
    $("code-bars").replaceChildren();
    return;
  }
  const logPx = answer.log_px[0];
  const percentile = answer.percentile[0];
  $("score-value").textContent = `log p(x) ≈ ${logPx.toFixed(1)} nats`;
  $("score-bar").style.width = `${percentile ?? 0}%`;
  $("score-text").textContent = percentile === null
    ? "This model has no reference scores of test digits to compare with."
    : `More digit-like than ${percentile.toFixed(0)}% of the test digits.`;
  renderBars(answer.mu[0], answer.sigma[0]);
}

function renderBars(mu, sigma) {
  const x = (v) => `${(Math.max(-BAR_LIMIT, Math.min(BAR_LIMIT, v)) + BAR_LIMIT)
    / (2 * BAR_LIMIT) * 100}%`;
  const width = (m, s) => `calc(${x(m + s)} - ${x(m - s)})`;
  $("code-bars").replaceChildren(...mu.map((m, d) => {
    const band = element("div", { className: "band" });
    band.style.left = x(m - sigma[d]);
    band.style.width = width(m, sigma[d]);
    const tick = element("div", { className: "tick" });
    tick.style.left = x(m);
    return element("div", { className: "bar", title: `z${d + 1}: μ = ${m.toFixed(3)}, ` +
      `σ = ${sigma[d].toFixed(3)}` }, [
      element("span", { className: "name", textContent: `z${d + 1}` }),
      element("div", { className: "track" }, [band, tick]),
      element("span", { className: "numbers", textContent:
        `${m >= 0 ? " " : ""}${m.toFixed(2)} ± ${sigma[d].toFixed(2)}` }),
    ]);
  }));
}

// --- interpolation --------------------------------------------------------------------------

function setEnd(which, z, label) {
  state.ends[which] = { z: Array.from(z), label, prior: false };
  interpolate();
  $("interpolate").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function interpolate() {
  const { a, b } = state.ends;
  $("end-a").textContent = a ? a.label : "–";
  $("end-b").textContent = b ? b.label : "–";
  if (!a || !b) return;
  const steps = Number.parseInt($("steps").value, 10);
  const chosen = $("method").value;
  // Spherical paths suit prior samples; straight lines suit encodings (auto picks).
  const method = chosen === "auto" ? (a.prior && b.prior ? "spherical" : "linear") : chosen;
  let answer;
  try {
    answer = await api("/v1/interpolate", {
      json: { latents: [a.z, b.z], steps, method },
    });
  } catch (error) {
    reportError(error);
    return;
  }
  $("strip").replaceChildren(...answer.images.map((image, i) => element("img", {
    src: png(image), alt: `step ${i + 1} of ${steps}`, width: 28, height: 28,
  })));
  $("strip").dataset.steps = String(answer.images.length);
  $("strip-note").textContent = `${answer.method} path, ${answer.images.length} steps`;
}

function setUpInterpolation() {
  const again = debounce(interpolate, 150);
  $("steps").addEventListener("input", () => {
    $("steps-value").value = $("steps").value;
    again();
  });
  $("method").addEventListener("change", interpolate);
  $("swap").addEventListener("click", () => {
    [state.ends.a, state.ends.b] = [state.ends.b, state.ends.a];
    interpolate();
  });
}

// --- a walk along one axis (traverse) --------------------------------------------------------

function setUpWalk() {
  const count = state.model.latent_dim;
  const options = [];
  if (state.axes) {
    for (let k = 0; k < count; k += 1) options.push([`principal:${k}`, `principal axis ${k + 1}`]);
  }
  for (let d = 0; d < count; d += 1) options.push([`dimension:${d}`, `dimension z${d + 1}`]);
  $("walk-axis").replaceChildren(...options.map(([value, label]) => element("option", {
    value, textContent: label,
  })));
}

async function walk() {
  if (!state.z || !$("walk-axis").value) return;
  const [basis, axis] = $("walk-axis").value.split(":");
  const range = Number.parseFloat($("walk-range").value);
  let answer;
  try {
    answer = await api("/v1/traverse", { json: {
      latent: Array.from(state.z, (v) => Number(v.toFixed(5))), axis: Number(axis), basis,
      range: [-range, range], steps: 9,
    } });
  } catch (error) {
    reportError(error);
    return;
  }
  $("walk").replaceChildren(...answer.images.map((image, i) => element("img", {
    src: png(image), alt: `offset ${answer.offsets[i].toFixed(2)}σ`, width: 28, height: 28,
  })));
  $("walk-note").textContent = `from −${range}σ to +${range}σ of the training codes ` +
    `(σ = ${answer.sigma.toFixed(2)} along this axis); the middle one is the sliders' digit`;
}

const walkSoon = debounce(walk, 250);

function setUpWalkControls() {
  $("walk-axis").addEventListener("change", walk);
  $("walk-range").addEventListener("input", () => {
    $("walk-range-value").value = `${$("walk-range").value}σ`;
    walkSoon();
  });
}

// --- start ----------------------------------------------------------------------------------

setUpKeyForm();
setUpGridControls();
setUpSliderControls();
setUpCanvas();
setUpInterpolation();
setUpWalkControls();
loadModel();
