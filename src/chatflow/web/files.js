// The chat's files: dropping or picking uploads (a progress bar each), and every version listed.

import { h, fill, uid } from "./dom.js";

/**
 * A link that downloads `file`: a plain link when no key is needed, else fetched with the key
 * (a link cannot send a header) and handed to the browser as a blob.
 */
export function downloadLink(client, file, text) {
  const link = h("a", { href: file.download_url, download: file.filename, class: "button" }, text);
  link.addEventListener("click", async (event) => {
    if (!client.key || link.dataset.blob) return;
    event.preventDefault();
    const blob = await client.download(file.download_url);
    link.dataset.blob = "1";
    link.href = URL.createObjectURL(blob);
    link.click();
    // Kept long enough for the download to start; a later click fetches again.
    setTimeout(() => {
      URL.revokeObjectURL(link.href);
      link.href = file.download_url;
      delete link.dataset.blob;
    }, 10_000);
  });
  return link;
}

export class FilesPanel {
  /** @param {{client, zone, input, uploads, list, onChange}} parts */
  constructor({ client, zone, input, uploads, list, onChange }) {
    Object.assign(this, { client, zone, input, uploads, list, onChange });
    this.chatId = null;
    this.files = [];
    input.addEventListener("change", () => {
      this.uploadAll([...input.files]);
      input.value = "";
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      this.uploadAll([...event.dataTransfer.files]);
    });
  }

  async open(chatId) {
    this.chatId = chatId;
    this.uploads.replaceChildren();
    await this.refresh();
  }

  async refresh() {
    if (!this.chatId) return;
    this.files = await this.client.files(this.chatId);
    this.render();
    this.onChange(this.files);
  }

  /** The latest version of each uploaded file, newest first. */
  inputs() {
    const latest = new Map();
    for (const file of this.files) {
      const known = latest.get(file.filename);
      if (!known || known.version < file.version) latest.set(file.filename, file);
    }
    return [...latest.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  }

  uploadAll(files) {
    return Promise.all(files.map((file) => this.uploadOne(file)));
  }

  async uploadOne(file) {
    const id = uid("upload");
    const bar = h("progress", { id, max: 100, value: 0 });
    const state = h("span", { class: "upload-state" }, "uploading");
    const item = h("li", { class: "upload" }, h("label", { for: id }, `Uploading ${file.name}`), bar, state);
    this.uploads.append(item);
    try {
      await this.client.upload(this.chatId, file, (fraction) => {
        bar.value = Math.round(fraction * 100);
      });
      bar.value = 100;
      state.textContent = "uploaded";
      item.classList.add("done");
      await this.refresh();
    } catch (error) {
      item.classList.add("refused");
      state.textContent = "refused";
      const named = error.message.includes(file.name) ? error.message : `${file.name}: ${error.message}`;
      item.append(h("p", { class: "error", role: "alert" }, named));
    }
  }

  render() {
    const rows = [...this.files].sort((a, b) =>
      a.filename === b.filename ? b.version - a.version : a.filename.localeCompare(b.filename),
    );
    if (!rows.length) {
      fill(this.list, h("p", { class: "empty" }, "No files yet."));
      return;
    }
    fill(
      this.list,
      h(
        "div",
        { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Files" },
        h(
          "table",
          { class: "files" },
          h("thead", {}, h("tr", {}, ["File", "Version", "Rows", "Columns", "From", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows.map((file) => this.row(file))),
        ),
      ),
    );
  }

  row(file) {
    return h(
      "tr",
      { "data-filename": file.filename, "data-version": file.version },
      h("td", {}, file.filename),
      h("td", {}, String(file.version)),
      h("td", {}, file.row_count === null ? "" : String(file.row_count)),
      h("td", { class: "columns-cell" }, (file.columns || []).join(", ")),
      h("td", {}, file.source === "output" ? "run output" : "upload"),
      h("td", {}, downloadLink(this.client, file, `Download ${file.filename} v${file.version}`)),
    );
  }
}
