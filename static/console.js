// The echo relay's console: say, play audio, interrupt, step through a script, watch events, see the face.
// Everything goes through the relay's own HTTP API on this origin; nothing is loaded from another host.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "echo-relay-token";
const EMOTION_KEY = "echo-relay-emotion"; // the Emotion picker's choice, kept for the browser tab
const SAID_KEPT = 200; // what the face said of the last utterances, for a line shown after its report came
// How often the page asks /health, and how long it waits to reconnect a broken event stream: every second, or
// what the page's address asks for (/?poll_ms=100; the tests do, to see the relay go and come back at once).
const POLL_MS = pollInterval(1000, 50, 60000);

/* ?poll_ms=N, a whole number of milliseconds within [least, most]; anything else leaves the default. */
function pollInterval(byDefault, least, most) {
  const asked = Number(new URLSearchParams(location.search).get("poll_ms"));
  return Number.isInteger(asked) && asked >= least && asked <= most ? asked : byDefault;
}

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  lastEventId: 0, // the SSE id of the last event shown: an id at or below it means a new relay process
  uptime: null, // the relay's uptime_s at the last /health: a smaller one means it restarted
  healthAsking: null, // the /health question out now (a promise), and the one to ask once it is answered
  healthNext: null,
  speakingKnown: false, // a relay.speaking event was seen: it, not /health, drives the indicator
  eventsPaused: false,
  health: null,
  script: { steps: [], position: 0 },
  currentIndex: null,
  tokenPrompted: false,
  editing: false, // the script's text area is open over a loaded script
  said: new Map(), // inference_id -> the relay.said event: what the face said of it
  scriptIds: new Map(), // script step index -> the inference_id it was last spoken under
};

// --- talking to the relay -------------------------------------------------------------

class Refused extends Error {}

async function api(method, path, { body, contentType } = {}) {
  const headers = {};
  const token = state.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (contentType) headers["Content-Type"] = contentType;
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (error) {
    showConnection(false);
    throw new Error("the relay is not reachable: is it still running?");
  }
  showConnection(true);
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401) {
    refused(token);
    throw new Refused(answer.error || "this relay needs its token");
  }
  return { status: response.status, answer };
}

/* Only a failed request says "not reachable": an answer the console cannot read is the relay's, so it is up. */
function showConnection(reachable) {
  const banner = $("connection");
  banner.hidden = reachable;
  banner.dataset.state = reachable ? "connected" : "unreachable";
  if (!reachable) {
    banner.textContent = "The relay is not reachable. Reconnecting…";
    showUnknown();
  }
}

/* With the relay gone, the room's state is not known: the header says so, and keeps what was (mode, counts). */
function showUnknown() {
  for (const id of ["status-call", "status-face", "status-speaking"]) flag(id, false, "", "unknown", true);
  state.speakingKnown = false; // the relay.speaking events missed meanwhile are not replayed: /health says it first
}

function say(element, text, kind) {
  element.textContent = text;
  element.className = `result ${kind || ""}`;
}

function outcome(element, { status, answer }, describe) {
  if (status >= 200 && status < 300) say(element, describe(answer), "ok");
  else say(element, `${status}: ${answer.error || "failed"}`, "error");
}

async function run(element, action) {
  try {
    await action();
  } catch (error) {
    say(element, error.message, "error");
  }
}

// --- the token ----------------------------------------------------------------------------

/* A 401 asks for the token again, unless it refused a token already replaced: it says nothing of the new one. */
function refused(token) {
  if (token !== state.token) return;
  askForToken(token ? "That token is wrong: check RELAY_AUTH_TOKEN and try again." : "");
}

function askForToken(message) {
  const form = $("token-form");
  form.hidden = false;
  say($("token-result"), message, message ? "error" : "");
  if (!state.tokenPrompted) $("token-input").focus();
  state.tokenPrompted = true;
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("token-input").value = "";
  $("token-form").hidden = true;
  state.tokenPrompted = false;
  connectEvents();
  loadScriptState();
  loadRoom();
});

// --- status -------------------------------------------------------------------------------

function flag(id, value, yes, no, quietNo = false) {
  const element = $(id);
  element.textContent = value ? yes : no;
  element.className = value ? "yes" : quietNo ? "quiet" : "no";
}

/* /health, one question at a time: two asked at once (a poll, and one after a send) can be answered in either
   order, and an older uptime read after a newer one is what a restarted relay looks like. A call while a question
   is out is answered by one more question once that one is answered, shared by every call meanwhile. */
function refreshHealth() {
  if (!state.healthAsking) {
    state.healthAsking = askHealth().finally(() => {
      state.healthAsking = null;
    });
    return state.healthAsking;
  }
  if (!state.healthNext) {
    state.healthNext = state.healthAsking.then(() => {
      state.healthNext = null;
      return refreshHealth();
    });
  }
  return state.healthNext;
}

/* /health answers anyone, but the room's state only with the token: without it there is only the prompt. */
async function askHealth() {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const eventsSeen = state.lastEventId; // the relay had sent these before it wrote its answer
  let response;
  try {
    response = await fetch("/health", { headers });
  } catch (error) {
    return showConnection(false);
  }
  showConnection(true);
  const health = await response.json().catch(() => ({}));
  if (health.auth_required && !state.token) askForToken("");
  if (typeof health.mode !== "string") return; // not (yet) the right token, or not a health answer
  if (relayRestarted(health, eventsSeen)) startOver(true);
  state.health = health;
  $("status-mode").textContent = health.mode;
  $("status-call").textContent = health.call_state;
  $("status-conversation").textContent = health.conversation_id || "–";
  flag("status-face", health.replica_present, "in the room", "not here");
  if (!state.speakingKnown) showSpeaking(health.replica_speaking);
  $("status-sent").textContent = health.messages_sent;
  $("status-errors").textContent = health.send_errors;
  const microphone = Boolean(health.microphone && health.microphone.enabled);
  $("via-microphone").disabled = !microphone;
  $("talk-microphone").disabled = !microphone;
}

function showSpeaking(speaking) {
  flag("status-speaking", speaking, "speaking", "silent", true);
}

/* A relay process started after the one this page knew: its uptime went back, or its ids are behind the events
   this page had shown when it asked. */
function relayRestarted(health, eventsSeen) {
  const before = state.uptime;
  state.uptime = health.uptime_s;
  if (typeof health.uptime_s !== "number") return false;
  return (before !== null && health.uptime_s < before) || health.last_event_id < eventsSeen;
}

/* The events and the script shown belong to a relay that is gone: clear them and read the new one from its start. */
function startOver(reconnect) {
  state.lastEventId = 0;
  state.speakingKnown = false;
  state.said.clear();
  state.scriptIds.clear();
  $("event-log").replaceChildren();
  loadScriptState();
  if (reconnect) connectEvents();
}

// --- say ------------------------------------------------------------------------------------

async function sendText() {
  const text = $("say-text").value;
  if (!text.trim()) return;
  const emotion = $("say-emotion").value;
  const fields = { text, interrupt: $("interrupt-first").checked };
  if (emotion) fields.emotion = emotion; // "none" sends no emotion field
  say($("say-result"), "sending…");
  await run($("say-result"), async () => {
    const body = JSON.stringify(fields);
    const result = await api("POST", "/send_text_message", { body, contentType: "application/json" });
    await refreshHealth(); // the header's count of messages sent, as of this answer
    outcome($("say-result"), result, (a) => `sent: ${a.messages_sent} message(s), inference_id ${a.inference_id}`);
    if (result.status !== 200) return;
    $("say-text").value = "";
    showSaid(text, emotion, result.answer.inference_id);
  });
}

/* The Emotion picker: Tavus's emotions (the relay checks them), "none" by default, remembered for the tab. */
function rememberEmotion() {
  const picker = $("say-emotion");
  const kept = sessionStorage.getItem(EMOTION_KEY);
  if (kept !== null && [...picker.options].some((option) => option.value === kept)) picker.value = kept;
  picker.addEventListener("change", () => sessionStorage.setItem(EMOTION_KEY, picker.value));
}

$("say-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    sendText();
  }
});
$("say-button").addEventListener("click", sendText);

// --- audio ------------------------------------------------------------------------------------

const AUDIO_TYPES = { wav: "audio/wav", mp3: "audio/mpeg", flac: "audio/flac", ogg: "audio/ogg", opus: "audio/ogg" };

async function sendAudio(file) {
  const extension = file.name.split(".").pop().toLowerCase();
  const contentType = AUDIO_TYPES[extension] || "application/octet-stream";
  const viaMicrophone = $("via-microphone").checked;
  const path = viaMicrophone ? "/microphone" : "/send_audio_message";
  say($("audio-result"), `sending ${file.name}…`);
  await run($("audio-result"), async () => {
    const result = await api("POST", path, { body: file, contentType });
    await refreshHealth();
    outcome($("audio-result"), result, (a) =>
      viaMicrophone
        ? `${file.name}: ${a.audio_ms} ms queued on the microphone (${a.queued_ms} ms in the queue)`
        : `${file.name}: ${a.audio_ms} ms sent in ${a.messages_sent} message(s)`,
    );
  });
}

$("audio-file").addEventListener("change", () => {
  const file = $("audio-file").files[0];
  if (file) sendAudio(file);
  $("audio-file").value = "";
});
const dropZone = $("drop-zone");
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("over");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) sendAudio(file);
});
dropZone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("audio-file").click();
  }
});

// --- interrupt --------------------------------------------------------------------------------

async function interrupt() {
  await run($("interrupt-result"), async () => {
    const result = await api("POST", "/interrupt");
    await refreshHealth();
    outcome($("interrupt-result"), result, (a) => `interrupted: ${a.requests_dropped} queued request(s) dropped`);
  });
}

$("interrupt-button").addEventListener("click", interrupt);

// --- script: the text area to write one, the list once it is loaded (shown once, never both) ----------------

function showScript(script) {
  state.script = script;
  const list = $("script-lines");
  list.replaceChildren(
    ...script.steps.map((step, index) => {
      const item = document.createElement("li");
      const line = document.createElement("span"); // struck through once played; what the face said is not
      line.className = "line";
      line.textContent = `line ${step.line}: ${step.text}`;
      if (typeof step.emotion === "string") line.append(emotionTag(step.emotion));
      item.append(line);
      item.dataset.index = index;
      if (state.scriptIds.has(index)) showSpokenUnder(item, state.scriptIds.get(index));
      return item;
    }),
  );
  editScript(state.editing || !script.steps.length);
  markScript(script.playing ? script.position : null, script.position);
}

function editScript(editing) {
  state.editing = editing && state.script.steps.length > 0; // kept open by Edit until a Load succeeds
  $("script-editor").hidden = !editing;
  $("script-lines").hidden = editing;
  $("script-edit").hidden = editing || !state.script.steps.length;
}

function markScript(current, done) {
  state.currentIndex = current;
  state.script.position = done;
  for (const item of $("script-lines").children) {
    const index = Number(item.dataset.index);
    item.classList.toggle("current", index === current);
    item.classList.toggle("done", index < done && index !== current);
    if (index === current) {
      item.setAttribute("aria-current", "step");
      item.scrollIntoView({ block: "nearest" });
    } else item.removeAttribute("aria-current");
  }
}

async function loadScriptState() {
  try {
    const { status, answer } = await api("GET", "/script");
    if (status === 200) showScript(answer);
  } catch (error) {
    /* shown by the connection banner or the token form */
  }
  $("script-title").parentElement.setAttribute("aria-busy", "false");
}

async function scriptCommand(path, body) {
  await run($("script-result"), async () => {
    const options = body ? { body: JSON.stringify(body), contentType: "application/json" } : {};
    const result = await api("POST", path, options);
    outcome($("script-result"), result, () => "");
    if (result.status >= 300) return;
    if (path === "/script") state.editing = false;
    showScript(result.answer);
  });
}

$("script-load").addEventListener("click", async () => {
  await scriptCommand("/script", { script: $("script-text").value, name: "console" });
  if (state.script.steps.length) $("script-next").focus(); // Space now plays the next line
});
$("script-edit").addEventListener("click", () => {
  editScript(true);
  $("script-text").focus();
});
$("script-next").addEventListener("click", () => scriptCommand("/script/next"));
$("script-play").addEventListener("click", () => scriptCommand("/script/play"));
$("script-stop").addEventListener("click", () => scriptCommand("/script/stop"));
$("script-file").addEventListener("change", async () => {
  const file = $("script-file").files[0];
  if (file) $("script-text").value = await file.text();
  $("script-file").value = "";
  editScript(true);
});

/* Each step's end moves the position on, so a stop greys exactly the steps that were played. */
function onScriptEvent(event) {
  const index = Number.isInteger(event.index) ? event.index : null;
  if (event.state === "loaded") {
    state.scriptIds.clear();
    return loadScriptState();
  }
  if (event.state === "playing" && index !== null && typeof event.inference_id === "string") {
    state.scriptIds.set(index, event.inference_id);
    const item = $("script-lines").children[index];
    if (item) showSpokenUnder(item, event.inference_id);
  }
  if (event.state === "playing" && index !== null) markScript(index, index);
  else if (["spoken", "timed_out", "done", "face_gone"].includes(event.state) && index !== null) markScript(null, index + 1);
  else if (event.state === "finished") {
    markScript(null, state.script.steps.length);
    say($("script-result"), "the script is finished", "ok");
  } else if (event.state === "stopped") {
    markScript(null, state.script.position);
    say($("script-result"), "stopped");
    loadScriptState(); // the relay's own position, should an event have been missed
  } else if (event.state === "failed") say($("script-result"), `line ${event.line}: ${event.error}`, "error");
}

// --- keyboard: Esc interrupts; Space or the right arrow steps the script (outside text fields) ----

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    event.preventDefault();
    interrupt();
    return;
  }
  const tag = document.activeElement.tagName;
  if (["TEXTAREA", "INPUT", "SELECT"].includes(tag)) return; // typing
  if (event.key === "ArrowRight" || (event.key === " " && tag !== "BUTTON")) {
    event.preventDefault(); // Space on a button presses that button, as always
    scriptCommand("/script/next");
  }
});

// --- the face ----------------------------------------------------------------------------------------

async function loadRoom() {
  try {
    const { status, answer } = await api("GET", "/room");
    if (status !== 200) return;
    const toggle = $("face-toggle");
    if (!answer.conversation_url) {
      toggle.disabled = true;
      $("face-note").textContent = "Dry run: there is no room; a simulated face reports speaking in the events.";
    } else if (answer.private) {
      toggle.disabled = true;
      $("face-note").textContent = "This room is private: open the link with its token that the relay printed.";
    } else {
      toggle.disabled = false;
      $("face-frame").dataset.url = answer.conversation_url;
    }
  } catch (error) {
    /* shown elsewhere */
  }
}

$("face-toggle").addEventListener("change", () => {
  const frame = $("face-frame");
  frame.hidden = !$("face-toggle").checked;
  if (!frame.hidden && frame.src !== frame.dataset.url) frame.src = frame.dataset.url;
  if (frame.hidden) frame.removeAttribute("src");
});

// --- start: once every script of the page has run (console-events.js reads the event stream) -----------------

document.addEventListener("DOMContentLoaded", () => {
  rememberEmotion();
  refreshHealth();
  setInterval(refreshHealth, POLL_MS);
  connectEvents();
  loadScriptState();
  loadRoom();
});
