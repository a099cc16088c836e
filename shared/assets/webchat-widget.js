/* Sales agents website chat widget. Plain JavaScript: no dependencies, no build step.
 *
 * Embed: <script src="https://API/webchat/WIDGET_KEY/widget.js?v=VERSION" async
 *          crossorigin="anonymous"></script>
 * Optional data- attributes on that tag override the channel's settings: data-title,
 * data-greeting, data-color (#rrggbb), data-agent-name, data-position (left|right),
 * data-open (true: start opened).
 *
 * Security: every text goes into the page with textContent (never parsed as HTML); no eval,
 * no inline handlers, no style attributes (a constructed stylesheet and the CSSOM instead),
 * so it runs under a strict Content-Security-Policy. The visitor token lives in
 * localStorage under this widget's key and is sent only to this widget's API. */
(() => {
  "use strict";
  const script = document.currentScript;
  const match = script && script.src && /^(.*)\/webchat\/([^/?#]+)\/widget\.js(?:[?#]|$)/.exec(script.src);
  if (!match) return;
  const key = decodeURIComponent(match[2]);
  const api = match[1] + "/webchat/" + encodeURIComponent(key);
  const flag = "__salesagentWebchat:" + key;
  if (window[flag]) return;
  window[flag] = true;

  const MAX_CHARS = 2000;
  const FAST_MS = 1200; // while a reply is pending (under the 60 polls a minute per visitor)
  const IDLE_MIN_MS = 3000; // idle, panel open: grows to IDLE_MAX_MS
  const IDLE_MAX_MS = 30000;
  const CLOSED_MS = 60000; // panel closed
  const PENDING_MAX_MS = 90000; // stop polling fast after this without a reply
  const data = script.dataset;
  const storeKey = "salesagent.webchat." + key;

  // ---- storage: the visitor token and whether the panel was open -------------------------
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(storeKey) || "{}") || {};
  } catch (e) {
    saved = {};
  }
  const save = () => {
    try {
      localStorage.setItem(storeKey, JSON.stringify(saved));
    } catch (e) {
      /* private mode: the session lasts as long as the page */
    }
  };
  const tokenValid = () => saved.token && Date.parse(saved.expires) > Date.now() + 60000;
  if (!tokenValid()) {
    delete saved.token;
    delete saved.expires;
  }

  // ---- DOM helpers: text only ---------------------------------------------------------------
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const name in attrs || {}) {
      if (name === "class") node.className = attrs[name];
      else if (name === "text") node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    }
    for (const child of children) node.append(child);
    return node;
  };
  const icon = (d) => {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  };

  const CSS = `
:host{all:initial;position:fixed;bottom:20px;right:20px;z-index:2147483000;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1f24}
:host(.left){right:auto;left:20px}
*{box-sizing:border-box}
[hidden]{display:none!important}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
button{font:inherit;cursor:pointer}
:focus-visible{outline:3px solid #1b1f24;outline-offset:2px;box-shadow:0 0 0 5px #fff}
.launcher{position:relative;display:flex;align-items:center;justify-content:center;width:58px;height:58px;margin-left:auto;border:0;border-radius:50%;background:var(--accent);color:var(--on-accent);box-shadow:0 4px 14px rgba(0,0,0,.25)}
:host(.left) .launcher{margin-left:0}
.launcher svg{width:28px;height:28px;fill:currentColor}
.badge{position:absolute;top:2px;right:2px;width:14px;height:14px;border:2px solid #fff;border-radius:50%;background:#d1242f}
.panel{display:flex;flex-direction:column;width:min(380px,calc(100vw - 24px));height:min(560px,calc(100vh - 110px));margin-bottom:12px;overflow:hidden;background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.28);animation:rise .18s ease-out}
@keyframes rise{from{opacity:0;transform:translateY(12px)}to{opacity:1;transform:none}}
header{display:flex;align-items:center;gap:8px;padding:12px 12px 12px 16px;background:var(--accent);color:var(--on-accent)}
header div{flex:1;min-width:0}
h2{margin:0;font-size:16px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.agent-name{margin:0;font-size:13px}
.close{display:flex;width:36px;height:36px;padding:6px;border:0;border-radius:8px;background:transparent;color:inherit}
.close svg{width:24px;height:24px;fill:currentColor}
.log{flex:1;overflow-y:auto;padding:14px;background:#f6f8fa;overscroll-behavior:contain}
.msg{max-width:85%;width:fit-content;margin:0 0 8px;padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere}
.msg.agent{background:#fff;border:1px solid #d0d7de;border-bottom-left-radius:4px}
.msg.visitor{margin-left:auto;background:var(--accent);color:var(--on-accent);border-bottom-right-radius:4px}
.msg.sending{opacity:.7}
.typing{display:flex;align-items:center;gap:6px;margin:0;padding:4px 16px;font-size:13px;color:#57606a;background:#f6f8fa}
.dots{display:inline-flex;gap:3px}
.dots i{width:6px;height:6px;border-radius:50%;background:#57606a;animation:blink 1.2s infinite both}
.dots i:nth-child(2){animation-delay:.2s}.dots i:nth-child(3){animation-delay:.4s}
@keyframes blink{0%,80%,100%{opacity:.25}40%{opacity:1}}
.error{margin:0;padding:8px 16px;font-size:14px;color:#82071e;background:#ffebe9;border-top:1px solid #ffcecb}
form{display:flex;gap:8px;align-items:flex-end;padding:10px;border-top:1px solid #d0d7de;background:#fff}
textarea{flex:1;min-height:42px;max-height:120px;padding:10px;border:1px solid #8c959f;border-radius:10px;font:inherit;color:inherit;resize:none}
.send{height:42px;padding:0 16px;border:0;border-radius:10px;background:var(--accent);color:var(--on-accent);font-weight:600}
.send:disabled{opacity:.55;cursor:default}
@media (prefers-reduced-motion:reduce){*,*::before,*::after{animation:none!important;transition:none!important}}
@media (forced-colors:active){.launcher,.send,.msg{border:1px solid CanvasText}}
`;

  // ---- the widget's elements ---------------------------------------------------------------
  const host = document.createElement("salesagent-webchat");
  const root = host.attachShadow({ mode: "open" });
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    root.append(el("style", { text: CSS }));
  }

  const title = el("h2", { id: "title" });
  const agentLine = el("p", { class: "agent-name" });
  const closeButton = el("button", { type: "button", class: "close", "aria-label": "Close chat" },
    icon("M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 0 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z"));
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Messages", tabindex: "0" });
  const typingText = el("span");
  const typing = el("p", { class: "typing", role: "status" }, el("span", { class: "dots", "aria-hidden": "true" }, el("i"), el("i"), el("i")), typingText);
  typing.hidden = true;
  const error = el("p", { class: "error", role: "alert" });
  error.hidden = true;
  const input = el("textarea", { id: "input", rows: "1", maxlength: String(MAX_CHARS), placeholder: "Type your message…", autocomplete: "off" });
  const sendButton = el("button", { type: "submit", class: "send" }, "Send");
  const form = el("form", { "aria-label": "Send a message" }, el("label", { for: "input", class: "sr", text: "Your message" }), input, sendButton);
  const panel = el("section", { class: "panel", id: "panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "title" },
    el("header", {}, el("div", {}, title, agentLine), closeButton), log, typing, error, form);
  panel.hidden = true;
  const badge = el("span", { class: "badge" });
  badge.hidden = true;
  const launcher = el("button", { type: "button", class: "launcher", "aria-controls": "panel", "aria-expanded": "false", "aria-label": "Open chat" },
    icon("M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-4.5 3.6A.9.9 0 0 1 2 20.9V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"), badge);
  root.append(panel, launcher);

  // ---- appearance: the channel's settings, then the tag's data- attributes ----------------
  let agentName = "Assistant";
  let greetingShown = false;
  const hex = /^#[0-9a-f]{6}$/i;
  const onAccent = (color) => {
    const lin = (i) => {
      const c = parseInt(color.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    };
    const l = 0.2126 * lin(1) + 0.7152 * lin(3) + 0.0722 * lin(5);
    // White or near-black, whichever contrasts more with the accent (WCAG ratio).
    return 1.05 / (l + 0.05) >= (l + 0.05) / 0.0556 ? "#ffffff" : "#111111";
  };
  const apply = (config) => {
    const pick = (name, fallback) => (data[name] && data[name].trim()) || fallback;
    let color = pick("color", config.color);
    if (!hex.test(color || "")) color = hex.test(config.color || "") ? config.color : "#1f6feb";
    host.style.setProperty("--accent", color);
    host.style.setProperty("--on-accent", onAccent(color));
    title.textContent = pick("title", config.title || "Chat with us");
    agentName = pick("agentName", config.agent_name || "Assistant");
    agentLine.textContent = agentName;
    typingText.textContent = agentName + " is typing…";
    if (data.position === "left") host.classList.add("left");
    const greeting = pick("greeting", config.greeting || "");
    if (greeting && !greetingShown) {
      greetingShown = true;
      log.prepend(el("p", { class: "msg agent greeting", text: greeting }));
    }
  };

  // ---- state -------------------------------------------------------------------------------
  let isOpen = false;
  let lastSeq = 0;
  let pendingSince = 0; // when the visitor's last message was sent, while its reply is pending
  let idleMs = IDLE_MIN_MS;
  let timer = null;
  let polling = false;
  let gone = false;
  let loaded = false; // the history was read once
  let blockedUntil = 0; // a 429 on polling: wait for Retry-After
  const localBubbles = []; // sent, not yet seen in a poll: [{text, node}]

  const showError = (text) => {
    error.textContent = text;
    error.hidden = !text;
  };
  const setPending = (on) => {
    pendingSince = on ? Date.now() : 0;
    typing.hidden = !on;
  };
  const scrollDown = () => {
    log.scrollTop = log.scrollHeight;
  };
  const retryAfter = (res) => Math.max(1, parseInt(res.headers.get("Retry-After"), 10) || 30);
  const seconds = (n) => (n === 1 ? "1 second" : n + " seconds");
  const offlineText = () =>
    navigator.onLine === false
      ? "You are offline. Your message was not sent; we will keep trying to reconnect."
      : "The chat cannot be reached right now. Please check your connection; we will keep trying.";
  const goneNow = () => {
    gone = true;
    stop();
    showError("This chat is no longer available.");
    input.disabled = true;
    sendButton.disabled = true;
  };

  const call = (method, path, body) => {
    const headers = {};
    if (saved.token) headers.Authorization = "Bearer " + saved.token;
    if (body) headers["Content-Type"] = "application/json";
    return fetch(api + path, {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "strict-origin-when-cross-origin",
    });
  };

  const forgetSession = () => {
    delete saved.token;
    delete saved.expires;
    save();
    lastSeq = 0;
    loaded = false;
  };

  const startSession = async () => {
    const res = await call("POST", "/sessions");
    if (res.status === 201) {
      const body = await res.json();
      saved.token = body.visitor_token;
      saved.expires = body.expires_at;
      save();
      return true;
    }
    if (res.status === 404) goneNow();
    else if (res.status === 429)
      showError("Too many new chats were started from your network. Please try again in " + seconds(retryAfter(res)) + ".");
    else showError("The chat could not start. Please try again in a moment.");
    return false;
  };

  // ---- rendering messages ------------------------------------------------------------------
  const render = (items) => {
    let agentArrived = false;
    for (const m of items) {
      if (m.sequence_no <= lastSeq) continue;
      lastSeq = m.sequence_no;
      const visitor = m.sender === "visitor";
      const local = visitor && localBubbles.length && localBubbles[0].text === m.text ? localBubbles.shift() : null;
      const node = local ? local.node : el("p", { class: "msg " + (visitor ? "visitor" : "agent") });
      if (!local) {
        node.append(el("span", { class: "sr", text: visitor ? "You: " : agentName + ": " }), document.createTextNode(m.text));
        log.append(node);
      }
      node.classList.remove("sending");
      node.title = new Date(m.timestamp).toLocaleString();
      if (!visitor) agentArrived = true;
    }
    if (agentArrived) {
      setPending(false);
      if (!isOpen && loaded) {
        badge.hidden = false;
        launcher.setAttribute("aria-label", "Open chat (new message)");
      }
    }
    // After a reload: a last message of the visitor's own still waits for its reply.
    if (!loaded && items.length && items[items.length - 1].sender === "visitor") setPending(true);
    loaded = true;
    if (items.length) {
      idleMs = IDLE_MIN_MS;
      scrollDown();
    }
  };

  // ---- polling: fast while a reply is pending, slower when idle, stopped when hidden -------
  const stop = () => {
    clearTimeout(timer);
    timer = null;
  };
  const nextDelay = () => {
    if (pendingSince && Date.now() - pendingSince > PENDING_MAX_MS) setPending(false);
    if (pendingSince) return FAST_MS;
    if (!isOpen) return CLOSED_MS;
    const delay = idleMs;
    idleMs = Math.min(IDLE_MAX_MS, Math.round(idleMs * 1.6));
    return delay;
  };
  const schedule = (delay) => {
    stop();
    if (gone || !saved.token || document.hidden) return;
    const wait = Math.max(delay === undefined ? nextDelay() : delay, blockedUntil - Date.now());
    timer = setTimeout(poll, wait);
  };
  const poll = async () => {
    stop();
    if (gone || !saved.token || polling || document.hidden) return;
    polling = true;
    let delay;
    try {
      const res = await call("GET", "/messages?after=" + lastSeq);
      if (res.ok) {
        render((await res.json()).items || []);
        if (error.dataset.kind === "net") {
          showError("");
          delete error.dataset.kind;
        }
      } else if (res.status === 401) {
        forgetSession();
        setPending(false);
        showError("Your previous chat has expired. Send a message to start a new one.");
      } else if (res.status === 404) {
        goneNow();
      } else if (res.status === 429) {
        blockedUntil = Date.now() + retryAfter(res) * 1000;
      } else {
        delay = 10000;
      }
    } catch (e) {
      showError(offlineText());
      error.dataset.kind = "net";
      delay = Math.max(5000, nextDelay());
    } finally {
      polling = false;
    }
    schedule(delay);
  };

  // ---- sending -----------------------------------------------------------------------------
  const send = async (text) => {
    if (!saved.token && !(await startSession())) return false;
    let res = await call("POST", "/messages", { text });
    if (res.status === 401) {
      forgetSession();
      if (!(await startSession())) return false;
      res = await call("POST", "/messages", { text });
    }
    if (res.status === 202) {
      const body = await res.json();
      const node = el("p", { class: "msg visitor sending" }, el("span", { class: "sr", text: "You: " }), document.createTextNode(body.text));
      log.append(node);
      localBubbles.push({ text: body.text, node });
      scrollDown();
      showError("");
      setPending(true);
      idleMs = IDLE_MIN_MS;
      return true;
    }
    if (res.status === 404) goneNow();
    else if (res.status === 429) {
      const wait = retryAfter(res);
      showError(
        wait > 120
          ? "This chat cannot take more messages for now. Please try again later."
          : "You are sending messages too quickly. Please wait " + seconds(wait) + " and try again.",
      );
    } else if (res.status === 413 || res.status === 422)
      showError("That message is too long. Please keep it under " + MAX_CHARS + " characters.");
    else showError("Something went wrong on our side and your message was not sent. Please try again.");
    return false;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || sendButton.disabled) return;
    sendButton.disabled = true;
    try {
      if (await send(text)) input.value = "";
    } catch (e) {
      showError(offlineText());
      error.dataset.kind = "net";
    } finally {
      sendButton.disabled = gone;
      input.focus();
      schedule(pendingSince ? FAST_MS : undefined);
    }
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : sendButton.click();
    }
  });

  // ---- opening and closing -----------------------------------------------------------------
  const setOpen = (open, returnFocus) => {
    isOpen = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    saved.open = open;
    save();
    if (open) {
      badge.hidden = true;
      idleMs = IDLE_MIN_MS;
      scrollDown();
      input.focus();
      schedule(0);
    } else {
      if (returnFocus) launcher.focus();
      schedule();
    }
  };
  launcher.addEventListener("click", () => setOpen(!isOpen, true));
  closeButton.addEventListener("click", () => setOpen(false, true));
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      setOpen(false, true);
    }
  });
  document.addEventListener("visibilitychange", () => (document.hidden ? stop() : schedule(0)));
  window.addEventListener("online", () => schedule(0));
  window.addEventListener("storage", (event) => {
    if (event.key !== storeKey) return; // another tab of the same site started or ended the session
    try {
      saved = JSON.parse(event.newValue || "{}") || {};
    } catch (e) {
      saved = {};
    }
    schedule(0);
  });

  // ---- start -------------------------------------------------------------------------------
  const start = async () => {
    let config = {};
    try {
      const res = await fetch(api + "/config", { mode: "cors", credentials: "omit" });
      if (res.status === 404) {
        console.warn("salesagent webchat: no widget has the key " + key);
        return;
      }
      if (res.ok) config = await res.json();
    } catch (e) {
      /* unreachable or not allowed on this site: defaults; sending will say why */
    }
    apply(config);
    (document.body || document.documentElement).append(host);
    if (saved.open || data.open === "true") setOpen(true, false);
    else schedule(0);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
