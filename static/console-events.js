// The echo relay's console, its event log: /events read as Server-Sent Events, shown newest first.
// Loaded after console.js, whose state and helpers it uses; anything it cannot read is shown as raw text.
"use strict";

const MAX_EVENTS_SHOWN = 500;
const SAID_SHOWN_CHARS = 300; // of a line the console sent, in the log (the relay has it whole)
const EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,100}$/; // what a type the console understands looks like

// --- events: Server-Sent Events read with fetch, so the token travels in a header, never in a URL ------

let eventsAbort = null;
let eventsRetry = null;

/* One stream at a time: a new one ends the old one and any reconnect it had planned. */
function connectEvents() {
  clearTimeout(eventsRetry);
  if (eventsAbort) eventsAbort.abort();
  readEvents();
}

async function readEvents() {
  const controller = new AbortController();
  eventsAbort = controller;
  const headers = { Accept: "text/event-stream", "Last-Event-ID": String(state.lastEventId) };
  const token = state.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let reader = null;
  try {
    const response = await fetch("/events", { headers, signal: controller.signal });
    if (response.status === 401) {
      refused(token);
      return;
    }
    showConnection(true);
    reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  } catch (error) {
    if (controller.signal.aborted) return;
    showConnection(false);
  }
  if (reader) await readFrames(reader, controller);
  if (!controller.signal.aborted) eventsRetry = setTimeout(readEvents, POLL_MS); // reconnect, replaying what was missed
}

async function readFrames(reader, controller) {
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (!controller.signal.aborted) showConnection(false); // the connection broke: the relay may be gone
      return;
    }
    if (chunk.done) return;
    buffer += chunk.value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      handleFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

/* The fields of one SSE frame (id, event, data), as the SSE rules read them. */
function parseFrame(frame) {
  const fields = { data: [] };
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "data") fields.data.push(value);
    else if (name === "id" || name === "event") fields[name] = value;
  }
  return { ...fields, data: fields.data.join("\n") };
}

/* Whatever arrives, the console shows it and reads on: what it does not understand is shown as raw text. */
function handleFrame(frame) {
  const fields = parseFrame(frame);
  if (!fields.data && !fields.event) return; // retry: and keep-alive comments
  const event = understood(fields.data);
  if (!event) return showRaw(frame);
  const id = /^\d+$/.test(fields.id || "") ? Number(fields.id) : null;
  if (id !== null) {
    if (id <= state.lastEventId) startOver(false); // a new relay process numbers its events from 1 again
    state.lastEventId = id;
  }
  try {
    if (relaysOwn(event, "relay.restarted")) startOver(false); // our Last-Event-ID was a relay that is gone
    if (relaysOwn(event, "relay.script")) onScriptEvent(event);
    if (relaysOwn(event, "relay.speaking")) onSpeaking(event);
    if (relaysOwn(event, "relay.said")) onSaid(event);
    showEvent(event);
  } catch (error) {
    showRaw(frame);
  }
}

function understood(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch (error) {
    return null;
  }
  const isObject = event !== null && typeof event === "object" && !Array.isArray(event);
  return isObject && typeof event.type === "string" && EVENT_TYPE.test(event.type) ? event : null;
}

/* The relay's own event of this type: the only kind the console acts on. A participant in the room can send any
   type, but what it sends always comes with its `sender` (and the relay publishes it as room.relay.* anyway). */
function relaysOwn(event, type) {
  return event.type === type && !Object.prototype.hasOwnProperty.call(event, "sender");
}

/* The face's speaking state, as the relay reports it: one relay.speaking event per change. */
function onSpeaking(event) {
  if (typeof event.speaking !== "boolean") return;
  state.speakingKnown = true;
  showSpeaking(event.speaking);
}

function describe(event) {
  if (relaysOwn(event, "relay.script")) return describeScript(event);
  if (relaysOwn(event, "relay.speaking")) return describeSpeaking(event);
  if (relaysOwn(event, "relay.said")) return describeSaid(event);
  const message = event.message && typeof event.message === "object" ? event.message : {};
  const details = { ...event };
  for (const key of ["id", "type", "time", "message", "sender"]) delete details[key];
  const parts = [];
  if (message.inference_id) parts.push(`inference_id ${message.inference_id}`);
  if (message.properties && Object.keys(message.properties).length) parts.push(JSON.stringify(message.properties));
  if (Object.keys(details).length) parts.push(JSON.stringify(details));
  return parts.join(" ");
}

/* A script's progress as the terminal says it: "playing line 4 (2/6): Hello there!" */
function describeScript(event) {
  const what = String(event.state || "").replace(/_/g, " ");
  const where = Number.isInteger(event.index) ? ` line ${event.line} (${event.index + 1}/${event.total}): ${event.text}` : "";
  const error = event.error ? `: ${event.error}` : event.waited_s ? ` after ${event.waited_s} s` : "";
  return `${event.name || "script"}: ${what}${where}${error}`;
}

function describeSpeaking(event) {
  const what = event.speaking ? "the face started speaking" : `the face stopped speaking${event.interrupted ? " (interrupted)" : ""}`;
  return event.inference_id ? `${what}, inference_id ${event.inference_id}` : what;
}

function describeSaid(event) {
  const what = event.interrupted ? "the face was cut off after" : "the face said";
  return `${what} “${event.text}”, inference_id ${event.inference_id}`;
}

function showEvent(event) {
  const item = document.createElement("li");
  item.value = Number.isInteger(event.id) ? event.id : 0;
  item.dataset.type = event.type;
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = event.type;
  item.append(type, ` ${describe(event)}`);
  if (typeof event.emotion === "string") item.append(emotionTag(event.emotion));
  if (event.message && event.message.simulated) {
    const tag = document.createElement("span");
    tag.className = "simulated";
    tag.textContent = " (simulated)";
    item.append(tag);
  }
  addToLog(item);
}

/* A line the console sent: in the log with its emotion, and later what the face said of it under it. */
function showSaid(text, emotion, inferenceId) {
  const item = document.createElement("li");
  item.className = "said";
  item.dataset.type = "said";
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = "said";
  const shown = text.length > SAID_SHOWN_CHARS ? `${text.slice(0, SAID_SHOWN_CHARS)}…` : text;
  item.append(type, ` ${shown}`);
  if (emotion) item.append(emotionTag(emotion));
  item.append(`, inference_id ${inferenceId}`);
  showSpokenUnder(item, inferenceId);
  addToLog(item);
}

function emotionTag(emotion) {
  const tag = document.createElement("span");
  tag.className = "emotion";
  tag.textContent = ` (${emotion})`;
  return tag;
}

/* relay.said: what the face really said of an utterance; kept a while, for a line shown after it came. */
function onSaid(event) {
  if (typeof event.inference_id !== "string" || typeof event.text !== "string") return;
  state.said.set(event.inference_id, event);
  while (state.said.size > SAID_KEPT) state.said.delete(state.said.keys().next().value);
  for (const list of [$("event-log"), $("script-lines")]) {
    for (const item of list.children) if (item.dataset.inferenceId === event.inference_id) showSpoken(item, event);
  }
}

function showSpokenUnder(item, inferenceId) {
  item.dataset.inferenceId = inferenceId;
  const said = state.said.get(inferenceId);
  if (said) showSpoken(item, said);
}

function showSpoken(item, said) {
  const line = item.querySelector(".spoken") || document.createElement("div");
  line.className = "spoken";
  line.textContent = `${said.interrupted ? "cut off after" : "the face said"}: “${said.text}”`;
  item.append(line);
}

function showRaw(frame) {
  const item = document.createElement("li");
  item.dataset.type = "";
  item.className = "raw";
  item.textContent = frame;
  addToLog(item);
}

function addToLog(item) {
  item.hidden = !matchesFilter(item.dataset.type);
  const log = $("event-log");
  if (!state.eventsPaused) log.prepend(item);
  while (log.children.length > MAX_EVENTS_SHOWN) log.lastChild.remove();
}

function matchesFilter(type) {
  const filter = $("event-filter").value.trim().toLowerCase();
  return !filter || type.toLowerCase().includes(filter);
}

$("event-filter").addEventListener("input", () => {
  for (const item of $("event-log").children) item.hidden = !matchesFilter(item.dataset.type);
});
$("events-pause").addEventListener("change", () => {
  state.eventsPaused = $("events-pause").checked;
});

