// A step's form, generated from its operation's JSON Schema, with the example as the default.

import { h, uid } from "./dom.js";

// The catalogue marks each argument that names columns of the step's input with this key
// (operations/registry.py, COLUMN_MARK): the form offers the input's real columns for it.
const COLUMN_MARK = "x-chatflow-column";

/** The schema of one argument without its `null` alternative, and whether null is allowed. */
function unwrap(schema) {
  const options = schema.anyOf || [];
  const real = options.filter((option) => option.type !== "null");
  if (options.length && real.length === 1) return { ...schema, ...real[0], anyOf: undefined, nullable: true };
  return schema;
}

/** How an argument is edited: "enum", "boolean", "number", "column", "columns", "list", "text", "json". */
function kindOf(schema) {
  if (Array.isArray(schema.enum)) return "enum";
  if (schema.type === "boolean") return "boolean";
  if (schema.type === "integer" || schema.type === "number") return "number";
  const column = schema[COLUMN_MARK] === true;
  if (schema.type === "string") return column ? "column" : "text";
  if (schema.type === "array" && schema.items && schema.items.type === "string" && !schema.items.enum) {
    return column ? "columns" : "list";
  }
  return "json";
}

/**
 * The fields of one step, and how to read them back.
 * @param {object} schema the operation's `arguments_schema`
 * @param {object} values the starting arguments (the example, or what the step held)
 * @param {string[]} columns the columns of the step's input, as far as the page knows them
 */
export function buildForm(schema, values, columns) {
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([name, raw]) => {
    const spec = unwrap(raw);
    const start = name in values ? values[name] : spec.default;
    return field(name, spec, kindOf(spec), start, columns, required.has(name));
  });
  return {
    element: h("div", { class: "fields" }, fields.map((f) => f.element)),
    /** `{arguments, problems}`: problems are `{name, message}` found before asking the server. */
    read() {
      const args = {};
      const problems = [];
      for (const f of fields) {
        try {
          const value = f.read();
          if (value !== undefined) args[f.name] = value;
        } catch (error) {
          problems.push({ name: f.name, message: error.message });
        }
      }
      return { arguments: args, problems };
    },
    /** Mark `name` (null: none) as the field in error, with `message`. */
    mark(name, message) {
      for (const f of fields) f.mark(f.name === name ? message : null);
    },
  };
}

function field(name, spec, kind, start, columns, required) {
  const id = uid(`arg-${name}`);
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const title = spec.title || name;
  const label = kind === "json" ? `${title} (JSON)` : kind === "list" ? `${title} (comma-separated)` : title;
  const widget = WIDGETS[kind](id, label, spec, start, columns, required);
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const hint = spec.description ? h("p", { class: "hint", id: hintId }, spec.description) : null;
  widget.input.setAttribute("aria-describedby", [hint ? hintId : null, errorId].filter(Boolean).join(" "));
  const element = h("div", { class: `field field-${kind}`, "data-argument": name }, widget.element, hint, error);
  return {
    name,
    element,
    read: widget.read,
    mark(message) {
      error.hidden = !message;
      error.textContent = message || "";
      if (message) widget.input.setAttribute("aria-invalid", "true");
      else widget.input.removeAttribute("aria-invalid");
    },
  };
}

function labelled(id, label, input) {
  return h("div", { class: "control" }, h("label", { for: id }, label), input);
}

const WIDGETS = {
  enum(id, label, spec, start) {
    const input = h(
      "select",
      { id },
      spec.nullable || spec.default === undefined
        ? h("option", { value: "" }, spec.default === undefined ? "(choose)" : "(default)")
        : null,
      spec.enum.map((option) => h("option", { value: JSON.stringify(option), selected: option === start }, String(option))),
    );
    return { input, element: labelled(id, label, input), read: () => (input.value ? JSON.parse(input.value) : undefined) };
  },
  boolean(id, label, spec, start) {
    const input = h("input", { id, type: "checkbox", checked: Boolean(start) });
    const element = h("div", { class: "control checkbox" }, input, h("label", { for: id }, label));
    return { input, element, read: () => input.checked };
  },
  number(id, label, spec, start) {
    const input = h("input", {
      id,
      type: "number",
      step: spec.type === "integer" ? 1 : "any",
      min: spec.minimum,
      max: spec.maximum,
      value: start === null || start === undefined ? "" : String(start),
    });
    const read = () => (input.value === "" ? undefined : Number(input.value));
    return { input, element: labelled(id, label, input), read };
  },
  text(id, label, spec, start, columns, required) {
    const input = h("input", { id, type: "text", value: start === null || start === undefined ? "" : String(start) });
    // An empty optional text means "not given"; an empty required one is sent for the server to refuse.
    const read = () => (input.value === "" && !required ? undefined : input.value);
    return { input, element: labelled(id, label, input), read };
  },
  list(id, label, spec, start) {
    const input = h("input", { id, type: "text", value: Array.isArray(start) ? start.join(", ") : "" });
    const read = () => {
      const items = input.value.split(",").map((item) => item.trim()).filter(Boolean);
      return items.length ? items : undefined;
    };
    return { input, element: labelled(id, label, input), read };
  },
  json(id, label, spec, start, columns, required) {
    const text = start === undefined || (start === null && !required) ? "" : JSON.stringify(start);
    const input = h("textarea", { id, rows: 2, spellcheck: "false", value: text });
    const read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch {
        throw new Error(`${label}: not valid JSON`);
      }
    };
    return { input, element: labelled(id, label, input), read };
  },
  column(id, label, spec, start, columns) {
    const known = columns.includes(start);
    if (!columns.length) return WIDGETS.text(id, label, spec, start, columns, true);
    const input = h(
      "select",
      { id },
      h("option", { value: "", selected: !known }, "(choose a column)"),
      columns.map((name) => h("option", { value: name, selected: name === start }, name)),
    );
    return { input, element: labelled(id, label, input), read: () => input.value || undefined };
  },
  columns(id, label, spec, start, columns) {
    if (!columns.length) return WIDGETS.list(id, label, spec, start);
    // The order columns are ticked in is the order sent: for some operations it is the output's.
    let picked = (Array.isArray(start) ? start : []).filter((name) => columns.includes(name));
    const boxes = columns.map((name, index) => {
      const boxId = `${id}-${index}`;
      const box = h("input", { id: boxId, type: "checkbox", value: name, checked: picked.includes(name) });
      box.addEventListener("change", () => {
        picked = picked.filter((other) => other !== name);
        if (box.checked) picked.push(name);
        order.textContent = picked.length ? `Order: ${picked.join(", ")}` : "";
      });
      return h("div", { class: "checkbox" }, box, h("label", { for: boxId }, name));
    });
    const order = h("p", { class: "hint order" }, picked.length ? `Order: ${picked.join(", ")}` : "");
    const element = h("fieldset", { class: "control columns", id }, h("legend", {}, label), boxes, order);
    const read = () => (picked.length ? [...picked] : undefined);
    return { input: element, element, read };
  },
};
