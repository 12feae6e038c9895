// The run panel: the latest run's progress, driven by the chat's events, and its outcome.

import { fill, h, resultView } from "./dom.js";
import { downloadLink } from "./files.js";

// Steps whose JSON result is what a person ran them for; shown as tables when the run ends.
const RESULT_OPERATIONS = new Set([
  "excel/inspect",
  "excel/preview",
  "excel/profile-columns",
  "excel/value-counts",
  "excel/validate",
]);

export class RunPanel {
  /** @param {{client, state, bar, percent, step, stepBar, cancel, outcome}} parts */
  constructor(parts) {
    Object.assign(this, parts);
    this.chatId = null;
    this.runId = null;
    this.steps = [];
    this.lastStep = null;
    this.cancel.addEventListener("click", () => this.requestCancel());
  }

  open(chatId) {
    this.chatId = chatId;
    this.runId = null;
    this.show("no run yet", 0, "", 0);
    this.cancel.disabled = true;
    this.outcome.replaceChildren();
  }

  show(state, progress, stepText, stepProgress) {
    this.state.textContent = state;
    this.bar.value = progress;
    this.percent.textContent = `${Math.round(progress)}%`;
    this.step.textContent = stepText;
    this.stepBar.value = stepProgress;
  }

  /** A run this page just queued; its events may already have arrived. */
  queued(runId) {
    if (this.runId === runId) return;
    this.runId = runId;
    this.steps = [];
    this.show("queued", 0, "", 0);
    this.cancel.disabled = false;
    this.outcome.replaceChildren();
  }

  /** Follow one event of the chat (stored or live, in seq order). */
  track(event) {
    if (event.type === "workflow_started") {
      this.runId = event.run_id;
      this.steps = event.steps || [];
      this.lastStep = null;
      this.show("running", 0, `Step 1/${event.total_steps}: ${this.steps[0] || ""}`, 0);
      this.cancel.disabled = false;
      this.outcome.replaceChildren();
      return;
    }
    if (!event.run_id || event.run_id !== this.runId) return;
    const handler = this[`on_${event.type}`];
    if (handler) handler.call(this, event);
  }

  on_step_started(event) {
    this.lastStep = event.step;
    this.step.textContent = `Step ${event.step}/${event.total_steps}: ${event.operation}`;
    this.stepBar.value = 0;
  }

  on_progress(event) {
    this.lastStep = event.step;
    this.bar.value = event.progress;
    this.percent.textContent = `${Math.round(event.progress)}%`;
    this.step.textContent = `Step ${event.step}/${event.total_steps}: ${event.operation}: ${event.message}`;
    this.stepBar.value = event.step_progress ?? 0;
  }

  on_workflow_completed(event) {
    this.finish("completed");
    this.bar.value = 100;
    this.percent.textContent = "100%";
    const outputs = event.outputs || [];
    const results = (event.results || [])
      .map((result, index) => ({ result, index, operation: this.steps[index] }))
      .filter((item) => item.result && RESULT_OPERATIONS.has(item.operation));
    fill(
      this.outcome,
      h("h3", {}, "Outputs"),
      outputs.length
        ? h("ul", { class: "outputs" }, outputs.map((file) => h("li", {}, downloadLink(this.client, file, `Download ${file.filename}`))))
        : h("p", {}, "This run wrote no files."),
      results.map(({ result, index, operation }) => resultView(result, `Step ${index + 1}: ${operation}`)),
    );
  }

  on_workflow_failed(event) {
    const error = event.error || {};
    this.finish(error.code === "interrupted" ? "interrupted" : "failed");
    // A run ended at start-up (the server died under it) names no step: the last one seen ran.
    const step = error.step || this.lastStep;
    const where = step ? `Step ${step} (${this.steps[step - 1] || "?"})` : "The run";
    fill(
      this.outcome,
      h("p", { class: "error run-error", role: "alert" }, h("strong", {}, `${where}: `), error.message || event.message),
      h("p", { class: "hint" }, `code: ${error.code}`),
    );
  }

  on_workflow_cancelled() {
    this.finish("cancelled");
    fill(this.outcome, h("p", {}, "The run was cancelled."));
  }

  finish(state) {
    this.state.textContent = state;
    this.cancel.disabled = true;
  }

  async requestCancel() {
    if (!this.runId) return;
    this.cancel.disabled = true;
    try {
      await this.client.cancel(this.chatId, this.runId);
    } catch (error) {
      if (error.code !== "run_finished") this.outcome.append(h("p", { class: "error", role: "alert" }, error.message));
    }
  }
}
