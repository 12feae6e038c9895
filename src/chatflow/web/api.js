// The one client of chatflow's public API and WebSocket: every URL the page uses is built here.
// Other clients may copy it: plain ES module, no dependencies, documented with JSDoc.

const API = "/api/v1";
const CHATS = `${API}/chat/workflows`;

/** An error answer of the API: its envelope's `code`, `message` and `details`, and the status. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {string} code stable error code, e.g. "password_protected"
   * @param {string} message the server's words, fit to show to a person
   * @param {any} [details] whatever the server added (step_index, errors, ...)
   */
  constructor(status, code, message, details = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The error a response carries, from its `{"error": {...}}` envelope when it has one. */
function errorOf(status, body) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.code === "string") {
    return new ApiError(status, error.code, String(error.message || error.code), error.details ?? null);
  }
  return new ApiError(status, `http_${status}`, `the server answered ${status}`);
}

function parse(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function query(params) {
  const pairs = Object.entries(params).filter(([, value]) => value !== undefined && value !== null);
  return pairs.length ? `?${new URLSearchParams(pairs.map(([k, v]) => [k, String(v)]))}` : "";
}

/** The REST API and the chat sockets, with the API key (if any) on every call. */
export class Client {
  /** @param {{key?: string|null, origin?: string}} [options] origin defaults to the page's */
  constructor({ key = null, origin = window.location.origin } = {}) {
    this.key = key;
    this.origin = origin;
  }

  /** Use `key` from now on (null: none); sockets opened later carry it as `?token=`. */
  setKey(key) {
    this.key = key || null;
  }

  headers(extra = {}) {
    return this.key ? { ...extra, Authorization: `Bearer ${this.key}` } : extra;
  }

  /** One JSON call; resolves to the envelope's `data` (null for 204), rejects with ApiError. */
  async call(method, path, body) {
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.origin + path, init);
    } catch {
      throw new ApiError(0, "unreachable", "the server cannot be reached");
    }
    const parsed = parse(await response.text());
    if (!response.ok) throw errorOf(response.status, parsed);
    return parsed === null ? null : parsed.data;
  }

  /** `{status}`, plus version and counters when the key is valid (or none is needed). */
  health() {
    return this.call("GET", `${API}/health`);
  }

  /** Every operation: `{name, description, arguments_schema, example}`. */
  operations() {
    return this.call("GET", `${API}/operations`);
  }

  /** One page of chats, newest first: `{items, next_cursor}`. */
  listChats({ limit = 50, cursor } = {}) {
    return this.call("GET", `${CHATS}${query({ limit, cursor })}`);
  }

  createChat(title) {
    return this.call("POST", CHATS, { title: title || null });
  }

  renameChat(chatId, title) {
    return this.call("PATCH", `${CHATS}/${encodeURIComponent(chatId)}`, { title: title || null });
  }

  deleteChat(chatId) {
    return this.call("DELETE", `${CHATS}/${encodeURIComponent(chatId)}`);
  }

  /** The chat with its `files` and `runs`. */
  chat(chatId) {
    return this.call("GET", `${CHATS}/${encodeURIComponent(chatId)}`);
  }

  /** Stored events with `seq > since`, oldest first, at most `limit`. */
  events(chatId, { since = 0, limit = 1000 } = {}) {
    return this.call("GET", `${CHATS}/${encodeURIComponent(chatId)}/events${query({ since, limit })}`);
  }

  /** Every stored event after `since`, page by page. */
  async allEvents(chatId, since = 0) {
    const out = [];
    for (;;) {
      const page = await this.events(chatId, { since, limit: 1000 });
      out.push(...page);
      if (page.length < 1000) return out;
      since = page[page.length - 1].seq;
    }
  }

  postMessage(chatId, text) {
    return this.call("POST", `${CHATS}/${encodeURIComponent(chatId)}/messages`, { text });
  }

  /** Every version of every file of the chat. */
  files(chatId) {
    return this.call("GET", `${CHATS}/${encodeURIComponent(chatId)}/files`);
  }

  /**
   * Upload one file; XMLHttpRequest, because fetch reports no upload progress.
   * @param {string} chatId
   * @param {File} file
   * @param {(fraction: number) => void} [onProgress] called with 0..1 as the body is sent
   * @returns {Promise<object[]>} the stored file versions
   */
  upload(chatId, file, onProgress = () => {}) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", `${this.origin}${CHATS}/${encodeURIComponent(chatId)}/upload`);
      for (const [name, value] of Object.entries(this.headers())) request.setRequestHeader(name, value);
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
      request.onload = () => {
        const parsed = parse(request.responseText);
        if (request.status >= 200 && request.status < 300) resolve(parsed.data);
        else reject(errorOf(request.status, parsed));
      };
      request.onerror = () => reject(new ApiError(0, "unreachable", "the upload was cut off"));
      const form = new FormData();
      form.append("file", file, file.name);
      request.send(form);
    });
  }

  /**
   * A file's bytes as a Blob, with the key (a plain link cannot send it).
   * @param {string} downloadUrl a `download_url` the API handed out
   */
  async download(downloadUrl) {
    const response = await fetch(downloadUrl, { headers: this.headers() });
    if (!response.ok) throw errorOf(response.status, parse(await response.text()));
    return response.blob();
  }

  /** Queue a run of `steps` (or a saved `workflow`) on `input`: `{run_id, status, status_url}`. */
  execute(chatId, { steps, workflow, input }) {
    const body = workflow ? { workflow, input } : { steps, input };
    return this.call("POST", `${CHATS}/${encodeURIComponent(chatId)}/execute`, body);
  }

  /** Check `steps` on a sample of `input`: each step's columns, types and first rows. */
  dryRun(chatId, { steps, input }) {
    return this.call("POST", `${CHATS}/${encodeURIComponent(chatId)}/execute${query({ dry_run: true })}`, {
      steps,
      input,
    });
  }

  run(chatId, runId) {
    return this.call("GET", `${CHATS}/${encodeURIComponent(chatId)}/runs/${encodeURIComponent(runId)}`);
  }

  cancel(chatId, runId) {
    return this.call(
      "POST",
      `${CHATS}/${encodeURIComponent(chatId)}/runs/${encodeURIComponent(runId)}/cancel`,
    );
  }

  /** Save `steps` under `name` (replacing one of that name when `replace`). */
  saveWorkflow(chatId, { name, steps, replace = false }) {
    return this.call("POST", `${CHATS}/${encodeURIComponent(chatId)}/workflows`, { name, steps, replace });
  }

  workflows() {
    return this.call("GET", `${API}/workflows`);
  }

  /** The chat's socket URL: `?since=` the last seq seen, `?token=` the key (no headers there). */
  socketUrl(chatId, since) {
    const base = this.origin.replace(/^http/, "ws");
    return `${base}${CHATS}/${encodeURIComponent(chatId)}/ws${query({ since, batch: true, token: this.key })}`;
  }

  /**
   * Follow a chat's events live from `since`; reconnects with backoff, resuming after the last
   * seq delivered, so nothing is lost and nothing comes twice.
   * @param {string} chatId
   * @param {{since?: number, onEvent: (event: object) => void,
   *          onState?: (state: "connecting"|"live"|"reconnecting"|"closed", detail?: string) => void}} options
   * @returns {{close: () => void, lastSeq: () => number}}
   */
  follow(chatId, { since = 0, onEvent, onState = () => {} }) {
    return new Follower(this, chatId, since, onEvent, onState);
  }
}

// Reconnect after 0.25 s, doubling up to 5 s, each with up to 20 % jitter.
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;
// Closes after which retrying cannot help: bad key, chat gone.
const FINAL_CLOSES = { 4401: "unauthorized", 4403: "origin not allowed", 4404: "chat not found" };

class Follower {
  constructor(client, chatId, since, onEvent, onState) {
    Object.assign(this, { client, chatId, seq: since, onEvent, onState });
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
    this.open("connecting");
  }

  lastSeq() {
    return this.seq;
  }

  open(state) {
    this.onState(state);
    const socket = new WebSocket(this.client.socketUrl(this.chatId, this.seq));
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.onState("live");
    };
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = (event) => this.closed(socket, event.code);
  }

  receive(text) {
    const parsed = parse(text);
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (!event || typeof event.seq !== "number" || event.seq <= this.seq) continue;
      this.seq = event.seq;
      this.onEvent(event);
    }
  }

  closed(socket, code) {
    if (this.stopped || socket !== this.socket) return;
    if (code in FINAL_CLOSES) {
      this.stopped = true;
      this.onState("closed", FINAL_CLOSES[code]);
      return;
    }
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    this.onState("reconnecting");
    this.timer = setTimeout(() => this.open("reconnecting"), delay * (1 + Math.random() * 0.2));
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
  }
}
