// voicebridge demo page: one WebSocket to the server (protocol: voicebridge/web/messages.py),
// the reply's text as the LLM writes it, its audio through an AudioWorklet (player.js), and each
// word lit while it plays: word times (seconds on the turn's audio timeline) are mapped to the
// AudioContext clock through the worklet's progress reports (sample `played` was played at
// context time `time`), and compared with the context time now at the speaker.
"use strict";

const PREBUFFER_SECONDS = 0.1; // the worklet's jitter buffer
const REPORT_EVERY = 4; // render quanta between the worklet's progress reports
const PLAYED_EVERY_MS = 250; // between the page's `played` reports to the server

const $ = (id) => document.getElementById(id);

// Everything the page knows, readable from the console (and by the browser test).
const demo = {
  ready: null, // the server's `ready` message
  turns: new Map(), // turn number -> turn state (see newTurn)
  errors: [], // `error` messages, in order
  connected: false,
};
window.voicebridgeDemo = demo;

let socket = null;
let audio = null; // {context, node, rate}, once the worklet is loaded
let anchor = null; // the last progress report: {turn, played, time}
let pendingSay = null; // a message typed while the previous turn was ending
let current = null; // the latest turn

// ------------------------------------------------------------------ connection

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    demo.connected = true;
  };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") handle(JSON.parse(event.data));
    else receiveAudio(event.data);
  };
  socket.onclose = (event) => {
    demo.connected = false;
    setConnection("closed", "disconnected");
    setEnabled(false);
    const reason = event.reason ? `: ${event.reason}` : "";
    const last = demo.errors.length ? `${demo.errors[demo.errors.length - 1].message} ` : "";
    showError("Connection closed", `${last}(code ${event.code}${reason}). Reload the page.`);
  };
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function handle(message) {
  switch (message.type) {
    case "ready": return onReady(message);
    case "turn": return onTurn(message);
    case "text": return onText(message);
    case "word": return onWord(message);
    case "audio_end": return onAudioEnd(message);
    case "done": return onDone(message);
    case "error": return onError(message);
  }
}

async function onReady(message) {
  demo.ready = message;
  $("llm").textContent = message.llm;
  $("speech").textContent = message.speech;
  $("message").maxLength = message.max_text_chars;
  fillVoices(message.voices, message.voice);
  const rate = $("rate");
  if (![...rate.options].some((option) => Number(option.value) === message.rate)) {
    rate.add(new Option(`${message.rate}×`, String(message.rate)));
  }
  rate.value = [...rate.options].find((option) => Number(option.value) === message.rate).value;
  try {
    await startAudio(message.sample_rate);
  } catch (error) {
    showError("Audio failed", `this browser cannot play the reply: ${error.message}`);
  }
  setConnection("ok", "connected");
  setEnabled(true);
  $("message").focus();
}

function fillVoices(voices, chosen) {
  const select = $("voice");
  select.replaceChildren();
  const groups = new Map();
  for (const [name, language, gender] of voices) {
    if (!groups.has(language)) {
      const group = document.createElement("optgroup");
      group.label = language;
      groups.set(language, group);
      select.append(group);
    }
    groups.get(language).append(new Option(gender ? `${name} · ${gender}` : name, name));
  }
  if (!voices.some(([name]) => name === chosen)) select.add(new Option(chosen, chosen));
  select.value = chosen;
}

// ------------------------------------------------------------------ audio

async function startAudio(rate) {
  const context = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
  await context.audioWorklet.addModule("player.js");
  const node = new AudioWorkletNode(context, "voicebridge-player", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    processorOptions: { prebuffer: Math.round(PREBUFFER_SECONDS * rate), reportEvery: REPORT_EVERY },
  });
  node.port.onmessage = (event) => fromPlayer(event.data);
  node.connect(context.destination);
  audio = { context, node, rate };
}

function receiveAudio(buffer) {
  const header = new DataView(buffer, 0, 8);
  const turn = demo.turns.get(header.getUint32(0, true));
  if (!turn || turn.stopped || !audio) return; // a stopped turn's late audio is not played
  const samples = new Int16Array(buffer, 8);
  if (header.getUint32(4, true) !== turn.received) {
    showError("Audio out of order", `turn ${turn.number}: a chunk is missing`);
  }
  if (turn.received === 0) setPhase(turn, "speaking…");
  turn.received += samples.length;
  audio.node.port.postMessage({ type: "chunk", turn: turn.number, samples }, [buffer]);
  endIfComplete(turn);
}

// Once every sample of the turn is here, the worklet plays the last ones without waiting.
function endIfComplete(turn) {
  if (turn.ended || turn.expected === null || turn.received < turn.expected || !audio) return;
  turn.ended = true;
  audio.node.port.postMessage({ type: "end", turn: turn.number });
}

function fromPlayer(message) {
  const turn = demo.turns.get(message.turn);
  if (!turn) return;
  if (message.type === "progress") {
    anchor = { turn: message.turn, played: message.played, time: message.time };
    turn.played = Math.max(turn.played, message.played);
    if (performance.now() - turn.reportedAt >= PLAYED_EVERY_MS) reportPlayed(turn, message);
  } else if (message.type === "finished") {
    turn.played = message.played;
    turn.playedHash = message.hash;
    turn.finished = true;
    if (!turn.stopped) reportPlayed(turn, message, true);
    render(turn);
    updateButtons();
  } else if (message.type === "cleared") {
    turn.played = message.played;
    turn.stop.played = message.played;
    turn.stop.playedAfter = message.playedAfter;
    turn.stop.dropped = message.dropped;
    turn.finished = true;
    updateButtons();
  }
}

// Tell the server how far the turn has played (its bridge drains into this page).
function reportPlayed(turn, message, finished = false) {
  const underruns = Math.max(0, message.underruns - turn.underruns); // new gaps only
  turn.underruns += underruns;
  turn.reportedAt = performance.now();
  send({ type: "played", turn: turn.number, seconds: message.played / audio.rate, underruns, finished });
}

// Context time being heard now (what the speaker outputs), on the AudioContext clock.
function outputTime() {
  const context = audio.context;
  const stamp = context.getOutputTimestamp ? context.getOutputTimestamp() : null;
  if (stamp && stamp.contextTime > 0) return stamp.contextTime;
  return Math.max(0, context.currentTime - (context.baseLatency || 0));
}

// Seconds of `turn`'s audio heard by now.
function heardSeconds(turn) {
  if (!audio) return 0;
  let played = turn.played;
  if (anchor && anchor.turn === turn.number && !turn.finished) {
    const position = anchor.played + (outputTime() - anchor.time) * audio.rate;
    played = Math.max(0, Math.min(position, turn.received));
  }
  return played / audio.rate;
}

// ------------------------------------------------------------------ turns

function newTurn(message) {
  const turn = {
    number: message.turn,
    text: "", // the reply as written
    words: [], // {index, text, start, end, span: [begin, end] | null}
    highlights: [], // {index, text, at (context time)}: each word lit, in order
    current: -1, // the word lit now
    spokenEnd: 0, // characters of the reply heard so far
    received: 0, // samples received
    expected: null, // samples the turn has in all (`audio_end`)
    ended: false, // the worklet was told it has them all
    played: 0, // samples the worklet played
    playedHash: null, // the worklet's FNV-1a of the samples it played (player.js)
    underruns: 0, // gaps reported to the server
    reportedAt: 0, // performance.now() of the last `played` report
    done: null, // the `done` message (it comes once the audio has played)
    stopped: false,
    stop: {}, // Stop: {at, heard, played, playedAfter, dropped}
    finished: false, // its audio has all played (or was cleared)
    elements: null,
    voice: "",
    phase: "",
  };
  const user = document.createElement("div");
  user.className = "bubble user";
  user.textContent = message.text;
  const bot = document.createElement("div");
  bot.className = "bubble bot writing";
  const reply = document.createElement("p");
  reply.className = "reply";
  const metrics = document.createElement("div");
  metrics.className = "metrics";
  bot.append(reply, metrics);
  $("empty").hidden = true;
  $("conversation").append(user, bot);
  turn.elements = { bot, reply, metrics };
  turn.voice = `${message.voice} · ${message.rate}×`;
  setPhase(turn, "waiting for the LLM…");
  return turn;
}

// The line under a reply until its metrics come.
function setPhase(turn, phase) {
  turn.phase = phase;
  turn.elements.metrics.textContent = `${turn.voice} · ${phase}`;
}

function onTurn(message) {
  const turn = newTurn(message);
  demo.turns.set(turn.number, turn);
  current = turn;
  if ($("message").value.trim() === message.text) $("message").value = "";
  updateButtons();
  scrollDown();
}

function onText(message) {
  const turn = demo.turns.get(message.turn);
  if (!turn) return;
  turn.text += message.text;
  if (turn.phase !== "speaking…") setPhase(turn, "writing…");
  render(turn);
  scrollDown();
}

function onWord(message) {
  const turn = demo.turns.get(message.turn);
  if (!turn) return;
  turn.words.push({
    index: message.index, text: message.text, start: message.start, end: message.end,
    span: message.span,
  });
}

function onAudioEnd(message) {
  const turn = demo.turns.get(message.turn);
  if (!turn) return;
  turn.expected = message.samples;
  turn.elements.bot.classList.remove("writing"); // the LLM has finished: all of it is spoken
  endIfComplete(turn);
}

function onDone(message) {
  const turn = demo.turns.get(message.turn);
  if (!turn) return;
  turn.done = message;
  turn.finished = true;
  turn.elements.bot.classList.remove("writing");
  turn.elements.metrics.replaceChildren(...metricsLine(message.metrics));
  render(turn);
  updateButtons();
  if (pendingSay) {
    send(pendingSay);
    pendingSay = null;
  }
}

function onError(message) {
  demo.errors.push(message);
  const titles = {
    llm: "The LLM failed",
    speech: "Speech failed",
    input: "Not sent",
    audio: "Playback failed",
    server: "Server error",
  };
  showError(titles[message.source] || "Error", message.message);
  const turn = message.turn ? demo.turns.get(message.turn) : null;
  if (turn) turn.elements.bot.classList.add("failed");
}

function metricsLine(metrics) {
  const seconds = (value) => (value === null ? "–" : `${value.toFixed(2)} s`);
  const items = [
    ["first token", seconds(metrics.first_token)],
    ["first audio", seconds(metrics.first_audio)],
    ["audio", seconds(metrics.audio_seconds)],
    ["RTF", metrics.real_time_factor === null ? "–" : metrics.real_time_factor.toFixed(2)],
  ];
  if (metrics.underruns) items.push(["gaps", String(metrics.underruns)]);
  return items.map(([name, value]) => {
    const item = document.createElement("span");
    const label = document.createElement("b");
    label.textContent = name;
    item.append(label, ` ${value}`);
    return item;
  });
}

// The reply: heard text, the word being said, the text still to come. After Stop: the kept
// part, then the unheard rest struck through.
function render(turn) {
  const { reply } = turn.elements;
  const pieces = [];
  const span = (className, text) => {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  };
  if (turn.stopped && turn.done) {
    const end = turn.done.heard_end === null ? turn.text.length : turn.done.heard_end;
    pieces.push(span("spoken", turn.text.slice(0, end)), span("unheard", turn.text.slice(end)));
    if (!reply.nextSibling.classList.contains("stopped")) {
      reply.after(span("stopped", "Stopped: the history keeps the reply as far as it was heard."));
    }
  } else if (turn.finished || turn.words.length === 0) {
    pieces.push(span("spoken", turn.text));
  } else {
    const word = turn.words[turn.current];
    const [begin, end] = word && word.span ? word.span : [turn.spokenEnd, turn.spokenEnd];
    pieces.push(span("spoken", turn.text.slice(0, begin)));
    if (end > begin) pieces.push(span("word", turn.text.slice(begin, end)));
    pieces.push(span("coming", turn.text.slice(end)));
  }
  reply.replaceChildren(...pieces);
}

// Light the word being heard now (one animation frame at a time).
function highlight() {
  const turn = current;
  if (audio && turn && !turn.stopped && !turn.finished && turn.words.length) {
    const heard = heardSeconds(turn);
    let index = -1;
    let spokenEnd = 0;
    for (const word of turn.words) {
      if (word.start > heard) break;
      if (word.end > heard) index = word.index;
      if (word.span) spokenEnd = word.end > heard ? word.span[0] : word.span[1];
    }
    if (index !== turn.current || spokenEnd !== turn.spokenEnd) {
      if (index >= 0 && index !== turn.current) {
        const word = turn.words[index];
        turn.highlights.push({ index, text: word.text, at: audio.context.currentTime });
      }
      turn.current = index;
      turn.spokenEnd = spokenEnd;
      render(turn);
    }
  }
  requestAnimationFrame(highlight);
}

// ------------------------------------------------------------------ controls

function say(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || !socket || socket.readyState !== WebSocket.OPEN) return;
  if (audio && audio.context.state !== "running") audio.context.resume();
  hideError();
  const message = {
    type: "say", text, voice: $("voice").value, rate: Number($("rate").value),
  };
  if (current && !current.done) {
    stop(); // barge in: the new message interrupts the reply still playing
    pendingSay = message; // sent when the server has ended that turn
  } else {
    send(message);
  }
}

function stop() {
  const turn = current;
  if (!turn || turn.stopped || turn.done || turn.finished) return;
  turn.stopped = true;
  turn.stop.at = audio ? audio.context.currentTime : null;
  turn.stop.heard = heardSeconds(turn);
  if (audio) audio.node.port.postMessage({ type: "clear", turn: turn.number, at: turn.stop.at });
  send({ type: "interrupt", turn: turn.number, heard: turn.stop.heard });
  render(turn);
  updateButtons();
}

function updateButtons() {
  const busy = current && !current.done && !current.stopped && !current.finished;
  $("stop").disabled = !busy;
}

function setEnabled(enabled) {
  for (const id of ["message", "voice", "rate", "send"]) $(id).disabled = !enabled;
  if (!enabled) $("stop").disabled = true;
}

function setConnection(state, text) {
  const element = $("connection");
  element.className = state;
  element.textContent = text;
}

function showError(title, text) {
  $("error-title").textContent = title;
  $("error-text").textContent = text;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

function scrollDown() {
  window.scrollTo({ top: document.body.scrollHeight });
}

$("composer").addEventListener("submit", say);
$("stop").addEventListener("click", stop);
$("error-close").addEventListener("click", hideError);
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) say(event);
});
connect();
requestAnimationFrame(highlight);
