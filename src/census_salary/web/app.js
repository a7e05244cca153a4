// The form page: fills the form from the server's page config, posts one row to
// /predict and shows the answer. No framework and no build step.
"use strict";

(function () {
  // The UCI Adult data codes each education level as a number; keep the two in step.
  const EDUCATION_LEVEL = {
    "Preschool": 1, "1st-4th": 2, "5th-6th": 3, "7th-8th": 4, "9th": 5, "10th": 6,
    "11th": 7, "12th": 8, "HS-grad": 9, "Some-college": 10, "Assoc-voc": 11,
    "Assoc-acdm": 12, "Bachelors": 13, "Masters": 14, "Prof-school": 15, "Doctorate": 16,
  };
  const UNKNOWN = "";
  const SHOWN_REASONS = 5;  // contributions drawn beside the probability
  // A server that stops answering (stopped, overloaded, a proxy holding the request)
  // must not leave the page waiting for ever: past this, the request is given up.
  const REQUEST_TIMEOUT_MS = 30000;
  // What an HTTP header can carry (and the server's rule for its key): printable ASCII.
  const HEADER_TEXT = /^[\x20-\x7e]*$/;

  const form = document.getElementById("predict-form");
  const submitButton = document.getElementById("submit");
  const errorBox = document.getElementById("error");
  const resultBox = document.getElementById("result");
  const apiKeyInput = document.getElementById("field-api_key");
  const config = readConfig();
  // The row contract's columns, with their limits, come from the server (as /metadata).
  const COLUMNS = config.columns || [];
  const CATEGORICAL = COLUMNS.filter((c) => c.kind === "category").map((c) => c.name);
  const NUMERICAL = COLUMNS.filter((c) => c.kind === "number").map((c) => c.name);

  function readConfig() {
    const fallback = {
      auth_required: false, example: {}, columns: [], vocabularies: {}, ranges: {},
      threshold: null, model_version: null,
    };
    try {
      return Object.assign(fallback, JSON.parse(
        document.getElementById("census-config").textContent));
    } catch (err) {
      return fallback;  // page opened without the server: the form still renders
    }
  }

  function input(name) {
    return document.getElementById("field-" + name);
  }

  function labelText(element) {
    const label = document.querySelector('label[for="' + element.id + '"]');
    return label ? label.textContent.trim() : element.name;
  }

  // EXAMPLE_ROW uses the published hyphenated names ("education-num").
  function exampleValue(name) {
    const example = config.example || {};
    if (name in example) return example[name];
    return example[name.replace(/_/g, "-")];
  }

  function fillSelect(name) {
    const select = input(name);
    const values = (config.vocabularies || {})[name] || [];
    select.replaceChildren(new Option("Unknown", UNKNOWN));
    for (const value of values) select.add(new Option(value, value));
  }

  function setDefaults() {
    for (const name of CATEGORICAL) {
      const value = exampleValue(name);
      const select = input(name);
      const known = Array.from(select.options).some((option) => option.value === value);
      select.value = known ? value : UNKNOWN;
    }
    for (const name of NUMERICAL) {
      const value = exampleValue(name);
      input(name).value = value === undefined || value === null ? "" : String(value);
    }
  }

  function applyLimits() {
    for (const column of COLUMNS) {
      const element = input(column.name);
      if (!element || column.kind !== "number") continue;
      element.min = String(column.minimum);
      element.max = String(column.maximum);
      const hint = document.getElementById("hint-" + column.name);
      if (!hint) continue;
      const allowed = document.createElement("span");
      allowed.className = "allowed";
      allowed.textContent = " Allowed: " + formatNumber(column.minimum) + " to " +
        formatNumber(column.maximum) + ".";
      hint.append(allowed);
    }
  }

  function describeRanges() {
    const ranges = config.ranges || {};
    for (const name of NUMERICAL) {
      const range = ranges[name];
      const hint = document.getElementById("hint-" + name);
      if (!range || !hint) continue;
      const seen = document.createElement("span");
      seen.className = "seen";
      seen.textContent = " Training data: " + formatNumber(range[0]) + " to " +
        formatNumber(range[1]) + ".";
      hint.append(seen);
    }
  }

  function formatNumber(value) {
    return Number(value).toLocaleString("en-US", { maximumFractionDigits: 2 });
  }

  function percent(value) {
    return (value * 100).toFixed(1) + "%";
  }

  function readRow() {
    const row = {};
    for (const name of CATEGORICAL) {
      const value = input(name).value;
      row[name] = value === UNKNOWN ? null : value;
    }
    for (const name of NUMERICAL) row[name] = Number(input(name).value);
    return row;
  }

  function problemText(element) {
    const label = labelText(element);
    const validity = element.validity;
    if (validity.valueMissing) return label + " is required.";
    if (validity.badInput || validity.stepMismatch) return label + " must be a whole number.";
    if (validity.rangeUnderflow) return label + " must be at least " + element.min + ".";
    if (validity.rangeOverflow) return label + " must be at most " + element.max + ".";
    return label + ": " + element.validationMessage;
  }

  // A field's problem is shown under it and read with it (aria-describedby), besides the
  // list in the error box below the form.
  function markInvalid(element, text) {
    element.setAttribute("aria-invalid", "true");
    const id = "problem-" + element.name;
    let note = document.getElementById(id);
    if (!note) {
      note = document.createElement("small");
      note.id = id;
      note.className = "field-problem";
      element.closest(".field").append(note);
      const described = element.getAttribute("aria-describedby");
      element.setAttribute("aria-describedby", described ? described + " " + id : id);
    }
    note.textContent = text;
  }

  function clearMark(element) {
    element.removeAttribute("aria-invalid");
    const note = document.getElementById("problem-" + element.name);
    if (!note) return;
    const described = (element.getAttribute("aria-describedby") || "").split(" ")
      .filter((id) => id && id !== note.id).join(" ");
    if (described) element.setAttribute("aria-describedby", described);
    else element.removeAttribute("aria-describedby");
    note.remove();
  }

  function clearMarks() {
    for (const element of form.querySelectorAll("[aria-invalid]")) clearMark(element);
  }

  function showError(detail, items) {
    errorBox.replaceChildren();
    const message = document.createElement("p");
    message.textContent = detail;
    errorBox.append(message);
    if (items && items.length) {
      const list = document.createElement("ul");
      for (const item of items) {
        const entry = document.createElement("li");
        entry.textContent = item;
        list.append(entry);
      }
      errorBox.append(list);
    }
    errorBox.hidden = false;
  }

  function hideError() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
  }

  function checkForm() {
    clearMarks();
    const invalid = Array.from(form.elements).filter(
      (element) => element.willValidate && !element.checkValidity());
    if (!invalid.length) return true;
    for (const element of invalid) markInvalid(element, problemText(element));
    resultBox.hidden = true;  // an answer to other values must not stand beside the error
    showError(
      invalid.length === 1 ? "Please correct this field." : "Please correct these fields.",
      invalid.map(problemText));
    invalid[0].focus();
    return false;
  }

  // The server's problem, in the error box and under the fields it names; the element
  // to move the focus to.
  function showProblem(status, body) {
    const items = [];
    let first = null;
    for (const error of (body && body.errors) || []) {
      const name = String(error.field || "").replace(/-/g, "_");
      const element = name ? input(name) : null;
      if (element) {
        markInvalid(element, error.message);
        first = first || element;
      }
      items.push((element ? labelText(element) : error.field || "Request") + ": " +
        error.message);
    }
    const detail = body && body.detail ? body.detail :
      "The server answered " + status + " without an explanation.";
    showError(detail, items);
    if (status === 401) {
      markInvalid(apiKeyInput, detail);
      return apiKeyInput;
    }
    return first || errorBox;
  }

  function showResult(body) {
    const probability = body.probabilities[0];
    const label = body.predictions[0];
    const threshold = body.threshold;
    const labelElement = document.getElementById("result-label");
    labelElement.textContent = label;
    resultBox.dataset.label = label === ">50K" ? "high" : "low";
    document.getElementById("result-probability").textContent = percent(probability);
    document.getElementById("result-threshold").textContent = percent(threshold) +
      " (predicted >50K at or above it)";
    document.getElementById("result-model-version").textContent = body.model_version;
    document.getElementById("meter-fill").style.width = (probability * 100) + "%";
    document.getElementById("meter-threshold").style.left = (threshold * 100) + "%";

    showReasons(body.contributions ? body.contributions[0] : null);

    const warnings = body.warnings[0] || [];
    const list = document.getElementById("result-warnings");
    list.replaceChildren(...warnings.map((text) => {
      const entry = document.createElement("li");
      entry.textContent = text;
      return entry;
    }));
    document.getElementById("result-warnings-box").hidden = warnings.length === 0;
    resultBox.hidden = false;
  }

  // The few largest contributions as bars from a centre line, scaled to the largest.
  function showReasons(contributions) {
    const box = document.getElementById("result-reasons-box");
    if (!contributions) {
      box.hidden = true;
      return;
    }
    const largest = Object.entries(contributions)
      .filter(([, value]) => value !== 0)
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
      .slice(0, SHOWN_REASONS);
    const scale = largest.length ? Math.abs(largest[0][1]) : 1;
    document.getElementById("result-reasons").replaceChildren(...largest.map(([name, value]) => {
      const entry = document.createElement("li");
      const field = document.createElement("span");
      const element = input(name);
      field.textContent = element ? labelText(element) : name;
      const track = document.createElement("span");
      track.className = "reason-track";
      const bar = document.createElement("span");
      bar.className = "reason-bar";
      bar.dataset.sign = value > 0 ? "up" : "down";
      const half = (Math.abs(value) / scale) * 50;
      bar.style.width = half + "%";
      bar.style.left = (value > 0 ? 50 : 50 - half) + "%";
      track.appendChild(bar);
      const number = document.createElement("span");
      number.className = "reason-value";
      number.textContent = (value > 0 ? "+" : "−") + Math.abs(value).toFixed(2);
      entry.append(field, track, number);
      return entry;
    }));
    box.hidden = largest.length === 0;
  }

  function setBusy(busy) {
    submitButton.disabled = busy;
    submitButton.textContent = busy ? "Predicting…" : "Predict";
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (err) {
      return null;
    }
  }

  function refuseKey() {
    if (!config.auth_required || HEADER_TEXT.test(apiKeyInput.value)) return false;
    const text = "The API key can hold only printable ASCII characters (letters, digits, " +
      "punctuation, spaces), as every key this server takes does.";
    resultBox.hidden = true;
    markInvalid(apiKeyInput, text);
    showError(text);
    apiKeyInput.focus();
    return true;
  }

  async function predict(event) {
    event.preventDefault();
    if (submitButton.disabled) return;
    hideError();
    if (!checkForm() || refuseKey()) return;
    const headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (config.auth_required) headers["X-API-Key"] = apiKeyInput.value;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let focus = submitButton;  // where the focus goes once the answer is shown
    setBusy(true);
    try {
      const request = {
        method: "POST",
        headers: headers,
        body: JSON.stringify({ inputs: [readRow()] }),
        signal: controller.signal,
      };
      let response = await fetch("/predict?explain=true", request);
      if (response.status === 409) {  // a model that cannot explain: predict without
        response = await fetch("/predict", request);
      }
      const body = await readJson(response);
      if (response.ok && body && Array.isArray(body.predictions)) {
        showResult(body);
      } else {
        resultBox.hidden = true;
        focus = showProblem(response.status, body);
      }
    } catch (err) {
      resultBox.hidden = true;
      showError(controller.signal.aborted ?
        "The server did not answer within " + REQUEST_TIMEOUT_MS / 1000 + " seconds. " +
        "Check that it is running, then try again." :
        "Could not reach the server (" + err.message + "). Check that it is running, " +
        "then try again.");
      focus = errorBox;
    } finally {
      clearTimeout(timer);
      setBusy(false);
      focus.focus();  // (the disabled button lost it while the request ran)
    }
  }

  function syncEducationLevel() {
    const level = EDUCATION_LEVEL[input("education").value];
    if (level !== undefined) input("education_num").value = String(level);
  }

  function init() {
    for (const name of CATEGORICAL) fillSelect(name);
    setDefaults();
    applyLimits();
    describeRanges();
    if (config.auth_required) {
      document.getElementById("auth").hidden = false;
      apiKeyInput.disabled = false;
      apiKeyInput.required = true;
    }
    document.getElementById("model-version").textContent = config.model_version || "unknown";
    document.getElementById("not-ready").hidden = Boolean(config.model_version);
    input("education").addEventListener("change", syncEducationLevel);
    form.addEventListener("input", (event) => clearMark(event.target));
    form.addEventListener("submit", predict);
    document.getElementById("reset").addEventListener("click", () => {
      setDefaults();
      clearMarks();
      hideError();
      resultBox.hidden = true;  // it answered other values
    });
    form.dataset.ready = "true";
  }

  init();
})();
