// Building DOM nodes. Text always goes in as text nodes, never as HTML: a cell reading
// "<img onerror=...>" is shown as those characters.

const PROPERTIES = new Set(["value", "checked", "selected", "disabled", "multiple", "hidden", "required"]);

/** An element: `props` are attributes ("class", "on<event>", a few live properties). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

/** Add children (nodes, or anything else as its text) to `parent`. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

/** Replace `parent`'s children. */
export function fill(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A cell's text: empty for null, JSON for objects, the value's own text otherwise. */
export function cellText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A table of `rows` (arrays, in the order of `columns`) that scrolls sideways on its own. */
export function table(columns, rows, caption) {
  // The caption sits above the table, not in it: a narrow table would squeeze it into a column.
  return h(
    "div",
    { class: "table-block" },
    caption ? h("p", { class: "caption" }, caption) : null,
    h(
      "div",
      { class: "table-scroll", tabindex: 0, role: "region", "aria-label": caption || "table" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, columns.map((name) => h("th", { scope: "col" }, cellText(name))))),
        h("tbody", {}, rows.map((row) => h("tr", {}, row.map((value) => h("td", {}, cellText(value)))))),
      ),
    ),
  );
}

/** A JSON result as tables: lists of objects as rows, objects of plain values as name/value. */
export function resultView(result, caption) {
  if (Array.isArray(result) && result.every((item) => item && typeof item === "object" && !Array.isArray(item))) {
    const columns = [...new Set(result.flatMap((item) => Object.keys(item)))];
    return table(columns, result.map((item) => columns.map((name) => item[name])), caption);
  }
  if (result && typeof result === "object" && !Array.isArray(result)) {
    const plain = Object.entries(result).filter(([, value]) => !isNested(value));
    const nested = Object.entries(result).filter(([, value]) => isNested(value));
    return h(
      "div",
      { class: "result" },
      plain.length ? table(["name", "value"], plain, caption) : h("p", { class: "caption" }, caption),
      nested.map(([name, value]) => resultView(value, `${caption} · ${name}`)),
    );
  }
  return h("pre", { class: "json" }, JSON.stringify(result, null, 2));
}

function isNested(value) {
  return value !== null && typeof value === "object" && !(Array.isArray(value) && value.every((v) => !isNested(v)));
}

/** A fresh id for label/field pairs. */
let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** When `iso` was, in the reader's own locale and time zone. */
export function when(iso) {
  const date = new Date(iso);
  return h("time", { datetime: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
}
