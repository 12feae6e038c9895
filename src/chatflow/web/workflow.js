// The workflow builder: steps from the catalogue, their forms, preview, run, save and saved runs.

import { fill, h, resultView, table } from "./dom.js";
import { buildForm } from "./forms.js";

export class Builder {
  /** @param {{client, parts: object, onQueued: (runId: string) => void}} options */
  constructor({ client, parts, onQueued }) {
    this.client = client;
    this.parts = parts;
    this.onQueued = onQueued;
    this.catalogue = new Map();
    this.steps = []; // {operation, values, form, element}
    this.inputs = [];
    this.previewColumns = []; // per step, from the last preview
    this.chatId = null;
    parts.add.addEventListener("click", () => this.add(parts.operation.value));
    parts.input.addEventListener("change", () => this.rebuild());
    parts.preview.addEventListener("click", () => this.preview());
    parts.run.addEventListener("click", () => this.run());
    parts.saveForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    parts.runSaved.addEventListener("click", () => this.runSaved());
  }

  setCatalogue(operations) {
    this.catalogue = new Map(operations.map((op) => [op.name, op]));
    fill(this.parts.operation, operations.map((op) => h("option", { value: op.name }, op.name)));
  }

  open(chatId) {
    this.chatId = chatId;
    this.steps = [];
    this.previewColumns = [];
    this.render();
    this.say("");
    this.parts.previewArea.replaceChildren();
    this.loadSaved().catch((error) => this.say(error.message, true));
  }

  /** The chat's files changed: the input choices (and the column choices) follow. */
  setInputs(inputs) {
    const chosen = this.parts.input.value;
    const before = JSON.stringify(this.columnsFor(0));
    this.inputs = inputs;
    fill(
      this.parts.input,
      inputs.map((file) => h("option", { value: file.filename, selected: file.filename === chosen }, file.filename)),
    );
    // Rebuilt only when the choices change: a rebuild would take the focus from a field.
    if (JSON.stringify(this.columnsFor(0)) !== before) this.rebuild();
  }

  /** The columns step `index` reads: the input's, or what the last preview said the step before made. */
  columnsFor(index) {
    if (index > 0 && this.previewColumns[index - 1]) return this.previewColumns[index - 1];
    const input = this.inputs.find((file) => file.filename === this.parts.input.value);
    return (input && input.columns) || [];
  }

  add(name) {
    const op = this.catalogue.get(name);
    if (!op) return;
    this.keepValues();
    this.steps.push({ operation: name, values: structuredClone(op.example || {}) });
    this.parts.previewArea.replaceChildren(); // it showed other steps
    this.render();
    const last = this.parts.steps.lastElementChild;
    if (last) last.querySelector("input, select, textarea, button").focus();
  }

  /** What was typed in each step, kept for the next render. */
  keepValues() {
    for (const step of this.steps) if (step.form) step.values = step.form.read().arguments;
  }

  /** Rebuild the forms (new column choices), keeping what was typed. */
  rebuild() {
    this.keepValues();
    this.render();
  }

  move(index, by) {
    this.rebuild();
    const [step] = this.steps.splice(index, 1);
    this.steps.splice(index + by, 0, step);
    this.previewColumns = [];
    this.parts.previewArea.replaceChildren();
    this.render();
    this.parts.steps.children[index + by]?.querySelector(by < 0 ? ".up" : ".down")?.focus();
  }

  remove(index) {
    this.rebuild();
    this.steps.splice(index, 1);
    this.previewColumns = [];
    this.parts.previewArea.replaceChildren();
    this.render();
  }

  render() {
    fill(this.parts.steps, this.steps.map((step, index) => this.card(step, index)));
    this.parts.empty.hidden = this.steps.length > 0;
  }

  card(step, index) {
    const op = this.catalogue.get(step.operation);
    step.form = buildForm(op.arguments_schema, step.values, this.columnsFor(index));
    const n = index + 1;
    const last = index === this.steps.length - 1;
    return h(
      "li",
      { class: "step", "data-step": n, "aria-label": `Step ${n}: ${step.operation}` },
      h("h3", {}, `Step ${n}: ${step.operation}`),
      h("p", { class: "hint" }, op.description),
      step.form.element,
      h("p", { class: "step-error error", hidden: true }),
      h(
        "div",
        { class: "step-actions" },
        h("button", { type: "button", class: "up", disabled: index === 0, "aria-label": `Move step ${n} up`, onclick: () => this.move(index, -1) }, "Up"),
        h("button", { type: "button", class: "down", disabled: last, "aria-label": `Move step ${n} down`, onclick: () => this.move(index, 1) }, "Down"),
        h("button", { type: "button", class: "remove", "aria-label": `Remove step ${n}`, onclick: () => this.remove(index) }, "Remove"),
      ),
    );
  }

  /** The steps as the API takes them, or null after marking what is wrong. */
  collect() {
    this.clearMarks();
    if (!this.steps.length) {
      this.say("Add a step first.", true);
      return null;
    }
    const steps = [];
    for (const [index, step] of this.steps.entries()) {
      const { arguments: args, problems } = step.form.read();
      if (problems.length) {
        this.mark(index, problems[0].name, problems[0].message);
        return null;
      }
      steps.push({ operation: step.operation, arguments: args });
    }
    return steps;
  }

  clearMarks() {
    for (const [index, step] of this.steps.entries()) {
      step.form?.mark(null);
      const note = this.parts.steps.children[index]?.querySelector(".step-error");
      if (note) note.hidden = true;
      this.parts.steps.children[index]?.classList.remove("invalid");
    }
  }

  /** Point at step `index` (and its field `name`, if known) with `message`. */
  mark(index, name, message) {
    const card = this.parts.steps.children[index];
    if (!card) return this.say(message, true);
    card.classList.add("invalid");
    const note = card.querySelector(".step-error");
    note.hidden = false;
    note.textContent = message;
    this.steps[index].form.mark(name, message);
    this.say(`Step ${index + 1}: ${message}`, true);
  }

  /** An API refusal, shown at the step and field it names. */
  refused(error) {
    const details = error.details || {};
    if (Number.isInteger(details.step_index)) {
      const loc = details.errors?.[0]?.loc || [];
      const field = typeof loc[0] === "string" ? loc[0] : null;
      this.mark(details.step_index, field, error.message);
    } else {
      this.say(error.message, true);
    }
  }

  say(text, isError = false) {
    this.parts.message.textContent = text;
    this.parts.message.classList.toggle("error", isError);
  }

  async preview() {
    const steps = this.collect();
    if (!steps) return;
    this.say("Previewing…");
    try {
      const check = await this.client.dryRun(this.chatId, { steps, input: this.parts.input.value || undefined });
      this.previewColumns = check.steps.map((step) => step.columns);
      this.say(`Preview of ${check.input.filename} (a sample of up to ${check.sample_rows} rows)`);
      fill(this.parts.previewArea, check.steps.map((step) => this.previewStep(step)));
    } catch (error) {
      this.parts.previewArea.replaceChildren();
      this.refused(error);
    }
  }

  previewStep(step) {
    const caption = `Step ${step.index + 1}: ${step.operation}` + (step.row_count === null ? "" : ` (${step.row_count} rows)`);
    return h(
      "div",
      { class: "preview-step", "data-step": step.index + 1 },
      step.columns ? table(step.columns, step.rows, caption) : h("p", { class: "caption" }, caption),
      step.files.length ? h("p", { class: "hint" }, `would write ${step.files.join(", ")}`) : null,
      step.result ? resultView(step.result, `${caption}: result`) : null,
    );
  }

  async run() {
    const steps = this.collect();
    if (!steps) return;
    await this.submit({ steps, input: this.parts.input.value || undefined });
  }

  async runSaved() {
    const workflow = this.parts.saved.value;
    if (!workflow) return this.say("Choose a saved workflow first.", true);
    await this.submit({ workflow, input: this.parts.input.value || undefined });
  }

  async submit(request) {
    this.clearMarks();
    try {
      const accepted = await this.client.execute(this.chatId, request);
      this.say("Run queued");
      this.onQueued(accepted.run_id);
    } catch (error) {
      this.refused(error);
    }
  }

  async save() {
    const name = this.parts.saveName.value.trim();
    const steps = this.collect();
    if (!steps) return;
    if (!name) return this.say("Give the workflow a name.", true);
    try {
      await this.client.saveWorkflow(this.chatId, { name, steps, replace: true });
      this.say(`Saved as “${name}”`);
      await this.loadSaved(name);
    } catch (error) {
      this.refused(error);
    }
  }

  async loadSaved(selected) {
    const saved = await this.client.workflows();
    fill(
      this.parts.saved,
      h("option", { value: "" }, saved.length ? "(choose)" : "(none saved yet)"),
      saved.map((w) => h("option", { value: w.name, selected: w.name === selected }, `${w.name} (${w.steps.length} steps)`)),
    );
  }
}
