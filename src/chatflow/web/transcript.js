// The chat's transcript: one entry per stored event worth reading, in seq order, each once.

import { h, when } from "./dom.js";

// Progress and step starts drive the run panel; the transcript keeps what a reader wants later.
const QUIET = new Set(["progress", "step_started"]);

function describe(event) {
  switch (event.type) {
    case "message_added": {
      const entry = event.entry || {};
      return { kind: entry.role === "user" ? "you" : "chatflow", text: entry.text ?? event.message };
    }
    case "file_uploaded": {
      const file = event.file || {};
      const rows = file.row_count === null || file.row_count === undefined ? "" : `, ${file.row_count} rows`;
      return { kind: "upload", text: `Uploaded ${file.filename} (version ${file.version}${rows})` };
    }
    case "workflow_started":
      return { kind: "run", text: `Run started: ${(event.steps || []).join(" → ")} on ${event.input?.filename}` };
    case "step_completed":
      return { kind: "step", text: event.message };
    case "workflow_completed":
      return { kind: "done", text: `Run completed: ${(event.outputs || []).map((o) => o.filename).join(", ") || "no files"}` };
    case "workflow_failed":
    case "workflow_cancelled":
      return { kind: event.error?.code === "cancelled" ? "cancelled" : "failed", text: event.message };
    default:
      return { kind: "event", text: event.message };
  }
}

/** The transcript list: `add(event)` appends an entry unless its seq is there already. */
export class Transcript {
  constructor(list) {
    this.list = list;
    this.seen = new Set();
  }

  clear() {
    this.list.replaceChildren();
    this.seen.clear();
  }

  add(event) {
    if (QUIET.has(event.type) || this.seen.has(event.seq)) return;
    this.seen.add(event.seq);
    const { kind, text } = describe(event);
    this.list.append(
      h(
        "li",
        { class: `entry entry-${kind}`, "data-seq": event.seq, "data-type": event.type },
        h("span", { class: "who" }, kind),
        h("span", { class: "text" }, text),
        when(event.timestamp),
      ),
    );
    this.list.scrollTop = this.list.scrollHeight; // the list scrolls, never the page
  }
}
