// The console's "Hold to talk": the presenter's voice, captured while the button (or T) is held, streamed to the
// relay as one audio-echo utterance (one inference_id, ~100 ms chunks in order, done on release).
// Loaded after console.js, whose helpers (api, say, $) it uses.
"use strict";

const TALK_DEFAULT_RATE = 24000; // the relay's default, until /health says its RELAY_SAMPLE_RATE
const TALK_CHUNK_MS = 100;
const TALK_MIN_MS = 150; // a shorter hold is a slip of the finger: nothing is sent
const TALK_KEY = "t";
const TALK_STAMPS_KEPT = 1000; // capture times of the last chunks sent, for tests/bench/bench_talk.py

/* Each chunk sent, in order: when its last sample was captured (ms since the epoch, this machine's clock), its bytes. */
window.talkCaptured = [];

let talking = null; // the utterance being held, or null

class TalkRefused extends Error {}

function holdToTalk() {
  if (talking) return;
  const session = { started: performance.now(), released: false, pending: [], sent: Promise.resolve(), failed: false };
  session.inferenceId = crypto.randomUUID().replaceAll("-", "");
  session.interrupt = $("interrupt-first").checked;
  // The relay's own rate, so it sends the audio untouched; its microphone if the presenter switched to it.
  session.rate = (state.health && state.health.sample_rate) || TALK_DEFAULT_RATE;
  session.microphone = $("talk-microphone").checked && !$("talk-microphone").disabled;
  talking = session;
  say($("say-result"), "opening the microphone…");
  openMicrophone(session).catch((error) => endSession(session, microphoneProblem(error), "error"));
}

/* getUserMedia, then an AudioWorklet at the relay's rate that hands back 100 ms chunks of 16-bit PCM. */
async function openMicrophone(session) {
  if (!window.isSecureContext || !navigator.mediaDevices) throw new TalkRefused("insecure");
  const constraints = { audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } };
  session.stream = await navigator.mediaDevices.getUserMedia(constraints);
  session.context = new AudioContext({ sampleRate: session.rate });
  await session.context.audioWorklet.addModule("/static/talk-worklet.js");
  if (session.released) return closeMicrophone(session); // let go while the microphone was opening
  const node = new AudioWorkletNode(session.context, "pcm-chunks", {
    processorOptions: { chunkFrames: Math.round((session.rate * TALK_CHUNK_MS) / 1000) },
  });
  node.port.onmessage = ({ data }) => onChunk(session, data);
  session.node = node;
  session.context.createMediaStreamSource(session.stream).connect(node);
  node.connect(session.context.destination); // pulled by the graph; it writes silence
  showLive(true);
  const route = session.microphone ? "through the relay's microphone" : "as audio echo";
  say($("say-result"), `LIVE ${route}: the face says what you say; let go to end`);
}

function onChunk(session, { pcm, level, last }) {
  if (session.failed) return;
  showLevel(level);
  if (pcm.byteLength) session.pending.push({ pcm, captured: performance.timeOrigin + performance.now() });
  if (last) return finish(session);
  if (performance.now() - session.started >= TALK_MIN_MS) flush(session, false);
}

/* Every chunk goes out after the one before has been answered: in order, no gaps, no duplicates. */
function flush(session, done) {
  const chunks = session.pending.splice(0);
  if (done && !chunks.length && !session.microphone) chunks.push({ pcm: new ArrayBuffer(0) });
  chunks.forEach((chunk, index) => {
    const closing = done && index === chunks.length - 1;
    session.sent = session.sent.then(() => postChunk(session, chunk, closing));
  });
  return session.sent;
}

/* Audio echo: one utterance, done on the last. The microphone: each chunk a clip, played back to back in real time. */
async function postChunk(session, { pcm, captured }, done) {
  if (session.failed) return;
  const body = session.microphone
    ? { sample_rate: session.rate }
    : { sample_rate: session.rate, inference_id: session.inferenceId, done };
  if (pcm.byteLength) body.audio = base64(pcm);
  const interrupt = session.interrupt;
  session.interrupt = false; // only before the first chunk
  if (interrupt && !session.microphone) body.interrupt = true;
  if (captured) window.talkCaptured.push({ at: captured, bytes: pcm.byteLength });
  if (window.talkCaptured.length > TALK_STAMPS_KEPT) window.talkCaptured.shift();
  try {
    if (interrupt && session.microphone && !answered(session, await api("POST", "/interrupt"))) return;
    const path = session.microphone ? "/microphone" : "/send_audio_message";
    answered(session, await api("POST", path, { body: JSON.stringify(body), contentType: "application/json" }));
  } catch (error) {
    session.failed = true;
    endSession(session, `${error.message}: nothing more is sent`, "error");
  }
}

/* A refused chunk (the face gone, an interrupt, the connection down) ends the stream: nothing more is sent. */
function answered(session, result) {
  if (result.status === 200 || result.status === 202) return true;
  session.failed = true;
  endSession(session, `the relay refused the voice (${result.status}: ${result.answer.error || "failed"}): nothing more is sent`, "error");
  return false;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function letGo() {
  const session = talking;
  if (!session || session.released) return;
  session.released = true;
  if (performance.now() - session.started < TALK_MIN_MS) {
    session.failed = true; // nothing was sent yet, and nothing will be
    return endSession(session, "let go within 150 ms: nothing was sent", "");
  }
  if (session.node) session.node.port.postMessage("flush"); // answered with the last chunk, then finish()
  else endSession(session, "", "");
}

async function finish(session) {
  closeMicrophone(session);
  await flush(session, true);
  if (session.failed) return;
  if (session.microphone) endSession(session, "played through the relay's microphone", "ok");
  else endSession(session, `spoken: inference_id ${session.inferenceId}`, "ok");
}

function endSession(session, message, kind) {
  closeMicrophone(session);
  if (talking === session) talking = null;
  say($("say-result"), message, kind);
}

function closeMicrophone(session) {
  showLive(false);
  if (session.stream) session.stream.getTracks().forEach((track) => track.stop());
  if (session.context && session.context.state !== "closed") session.context.close();
}

function microphoneProblem(error) {
  if (error instanceof TalkRefused)
    return "the microphone needs a secure page: open the console at http://127.0.0.1 or http://localhost";
  if (error.name === "NotAllowedError")
    return "the browser may not use the microphone: allow it for this page (the icon in the address bar), then hold again";
  if (error.name === "NotFoundError") return "no microphone found: plug one in or choose one in the system settings";
  return `the microphone could not be opened (${error.name || error.message})`;
}

function showLive(live) {
  $("talk-button").classList.toggle("live", live);
  $("talk-live").classList.toggle("on", live);
  if (!live) showLevel(0);
}

function showLevel(level) {
  const meter = $("talk-level");
  meter.value = Math.min(1, level * 4); // speech at a normal distance is about 0.05-0.25 RMS
  meter.dataset.peak = Math.max(Number(meter.dataset.peak || 0), meter.value);
}

$("talk-button").addEventListener("pointerdown", (event) => {
  event.preventDefault();
  try {
    $("talk-button").setPointerCapture(event.pointerId); // the release counts wherever the pointer is then
  } catch (error) {
    /* a pointer that is no longer down: its pointerup follows */
  }
  holdToTalk();
});
for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) $("talk-button").addEventListener(name, letGo);
document.addEventListener("keydown", (event) => {
  if (event.key.toLowerCase() !== TALK_KEY || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (["TEXTAREA", "INPUT", "SELECT"].includes(document.activeElement.tagName)) return; // typing a T
  event.preventDefault();
  holdToTalk();
});
document.addEventListener("keyup", (event) => {
  if (event.key.toLowerCase() === TALK_KEY) letGo();
});
window.addEventListener("blur", letGo);
