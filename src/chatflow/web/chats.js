// The chats list: newest first, each with its title and when something last happened in it.

import { fill, h, when } from "./dom.js";

const PAGE = 50;

export class ChatList {
  /** @param {{client, list: HTMLElement, onOpen: (chat) => void, onError: (error) => void}} options */
  constructor({ client, list, onOpen, onError }) {
    Object.assign(this, { client, list, onOpen, onError });
    this.chats = [];
    this.cursor = null;
    this.current = null;
  }

  /** The first page of chats (again). */
  async load() {
    this.chats = [];
    this.cursor = null;
    await this.more();
  }

  /** The next page, below those shown. */
  async more() {
    const page = await this.client.listChats({ limit: PAGE, cursor: this.cursor });
    this.chats = [...this.chats, ...page.items];
    this.cursor = page.next_cursor;
    this.render();
    await Promise.all(page.items.map((chat) => this.lastActivity(chat)));
  }

  render() {
    if (!this.chats.length) {
      fill(this.list, h("li", { class: "empty" }, "No chats yet."));
      return;
    }
    fill(
      this.list,
      this.chats.map((chat) =>
        h(
          "li",
          { "data-chat": chat.chat_id },
          h(
            "button",
            {
              type: "button",
              class: "chat-link",
              "aria-current": chat.chat_id === this.current ? "true" : null,
              onclick: () => this.onOpen(chat),
            },
            h("span", { class: "title" }, chat.title || "Untitled chat"),
            h("span", { class: "activity" }, "last activity ", when(chat.created_at)),
          ),
        ),
      ),
      this.cursor
        ? h("li", {}, h("button", { type: "button", onclick: () => this.more().catch(this.onError) }, "More chats"))
        : null,
    );
  }

  /** The time of the chat's latest event (its creation when it has none), read from the API. */
  async lastActivity(chat) {
    if (!chat.last_seq) return;
    const [event] = await this.client.events(chat.chat_id, { since: chat.last_seq - 1, limit: 1 });
    const slot = this.list.querySelector(`li[data-chat="${CSS.escape(chat.chat_id)}"] .activity`);
    if (event && slot) fill(slot, "last activity ", when(event.timestamp));
  }

  select(chatId) {
    this.current = chatId;
    for (const button of this.list.querySelectorAll(".chat-link")) {
      const mine = button.closest("li").dataset.chat === chatId;
      if (mine) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }
}
