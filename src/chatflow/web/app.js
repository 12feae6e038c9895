// The chat page: wires the chats list, transcript, files, builder and run panel to one Client.

import { Client } from "./api.js";
import { ChatList } from "./chats.js";
import { FilesPanel } from "./files.js";
import { RunPanel } from "./run.js";
import { Transcript } from "./transcript.js";
import { Builder } from "./workflow.js";

const $ = (id) => document.getElementById(id);
// Kept for the tab's session only: closing the tab forgets the key.
const KEY_SLOT = "chatflow.api-key";

const client = new Client({ key: sessionStorage.getItem(KEY_SLOT) });
const transcript = new Transcript($("transcript"));
const runPanel = new RunPanel({
  client,
  state: $("run-state"),
  bar: $("run-bar"),
  percent: $("run-percent"),
  step: $("run-step"),
  stepBar: $("step-bar"),
  cancel: $("cancel"),
  outcome: $("run-outcome"),
});
const builder = new Builder({
  client,
  onQueued: (runId) => runPanel.queued(runId),
  parts: {
    input: $("input-file"),
    operation: $("operation"),
    add: $("add-step"),
    empty: $("no-steps"),
    steps: $("steps"),
    preview: $("preview"),
    run: $("run"),
    message: $("builder-message"),
    previewArea: $("preview-area"),
    saveForm: $("save-form"),
    saveName: $("save-name"),
    saved: $("saved"),
    runSaved: $("run-saved"),
  },
});
const files = new FilesPanel({
  client,
  zone: $("drop"),
  input: $("file-input"),
  uploads: $("uploads"),
  list: $("file-list"),
  onChange: () => builder.setInputs(files.inputs()),
});
const chats = new ChatList({
  client,
  list: $("chat-list"),
  onOpen: (chat) => guard(openChat(chat)),
  onError: (error) => problem(error),
});

let current = null; // the open chat
let follower = null; // its live events

/** Show what went wrong in words; a missing or refused key asks for one. */
function problem(error) {
  if (error && error.code === "unauthorized") return askForKey();
  $("problem").hidden = false;
  $("problem").textContent = error ? error.message : "";
}

function guard(promise) {
  return promise.catch(problem);
}

function askForKey(message = "") {
  follower?.close();
  $("app").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = message;
  $("api-key").focus();
}

async function start() {
  try {
    builder.setCatalogue(await client.operations());
  } catch (error) {
    if (error.code !== "unauthorized") throw error;
    return askForKey(client.key ? "That key was not accepted." : "");
  }
  $("key-form").hidden = true;
  $("app").hidden = false;
  $("problem").hidden = true;
  await chats.load();
}

/** An event, stored or live, in seq order. */
function show(event) {
  transcript.add(event);
  runPanel.track(event);
}

/** A live event; new files (an upload, a run's outputs) are listed again. */
function onEvent(event) {
  show(event);
  if (event.type === "file_uploaded" || event.type === "workflow_completed") guard(files.refresh());
}

function showConnection(state, detail) {
  $("connection").textContent = detail ? `${state}: ${detail}` : state;
  document.body.dataset.connection = state;
  if (state === "live") $("problem").hidden = true; // calls that failed while it was away
  if (detail === "unauthorized") askForKey("The key was refused.");
}

async function openChat(chat) {
  follower?.close();
  current = chat;
  chats.select(chat.chat_id);
  $("chat").hidden = false;
  $("chat").dataset.chatId = chat.chat_id;
  $("confirm-delete").hidden = true;
  $("chat-title").value = chat.title || "";
  transcript.clear();
  runPanel.open(chat.chat_id);
  builder.open(chat.chat_id);
  const listed = files.open(chat.chat_id);
  // The stored events first (?since=0, page by page), then live from the last one seen.
  const backlog = await client.allEvents(chat.chat_id, 0);
  if (current !== chat) return;
  backlog.forEach(show); // the files are listed once, below
  const since = backlog.length ? backlog[backlog.length - 1].seq : 0;
  follower = client.follow(chat.chat_id, { since, onEvent, onState: showConnection });
  await listed;
}

async function createChat(event) {
  event.preventDefault();
  const chat = await client.createChat($("new-title").value.trim());
  $("new-title").value = "";
  await chats.load();
  await openChat(chat);
  $("file-input").focus();
}

async function renameChat(event) {
  event.preventDefault();
  if (!current) return;
  current = { ...current, ...(await client.renameChat(current.chat_id, $("chat-title").value.trim())) };
  await chats.load();
  chats.select(current.chat_id);
}

async function deleteChat() {
  if (!current) return;
  const chatId = current.chat_id;
  follower?.close();
  current = null;
  await client.deleteChat(chatId);
  $("chat").hidden = true;
  $("connection").textContent = "not connected";
  await chats.load();
  $("new-title").focus();
}

async function sendMessage(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!current || !text) return;
  await client.postMessage(current.chat_id, text);
  $("message").value = "";
}

function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  client.setKey(key);
  sessionStorage.setItem(KEY_SLOT, key);
  $("api-key").value = "";
  guard(start().then(() => current && openChat(current)));
}

$("key-form").addEventListener("submit", useKey);
$("new-chat").addEventListener("submit", (event) => guard(createChat(event)));
$("rename-form").addEventListener("submit", (event) => guard(renameChat(event)));
$("message-form").addEventListener("submit", (event) => guard(sendMessage(event)));
$("delete-chat").addEventListener("click", () => {
  $("confirm-delete").hidden = false;
  $("delete-no").focus();
});
$("delete-no").addEventListener("click", () => {
  $("confirm-delete").hidden = true;
  $("delete-chat").focus();
});
$("delete-yes").addEventListener("click", () => guard(deleteChat()));
guard(start());
