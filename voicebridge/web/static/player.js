// voicebridge demo: the AudioWorklet that plays the turns' 16-bit PCM, in order.
//
// It runs on the audio rendering thread at the AudioContext's rate, which the page sets to the
// audio's own sample rate, so every sample it gets is played once, unchanged but for the scale.
// Jitter buffer: a turn (and a turn that ran dry) starts only once `prebuffer` samples are queued,
// or its last chunk has come. Messages in: chunk {turn, samples: Int16Array}, end {turn},
// clear {turn, at}. Messages out: progress {turn, played, time, hash, underruns} every
// `reportEvery` render quanta while playing (`played` samples of the turn were played before
// context time `time`), finished {turn, played, hash, underruns}, cleared {turn, played,
// playedAfter, dropped}. `hash` is FNV-1a over the played samples (16 bits each), so the page can prove that
// what it played is what the server sent.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const HISTORY = 1024; // render quanta remembered for `clear` (about 6 s at 22050 Hz)

class VoicebridgePlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions || {};
    this.prebuffer = settings.prebuffer || 2048;
    this.reportEvery = settings.reportEvery || 4;
    this.queue = []; // {turn, samples}, in arrival order
    this.head = 0; // next sample of queue[0]
    this.queued = 0; // samples in the queue
    this.endedThrough = 0; // turns whose last chunk has come
    this.clearedThrough = 0; // turns stopped: their chunks are dropped
    this.turn = 0; // the turn being played
    this.played = 0;
    this.hash = FNV_OFFSET;
    this.underruns = 0;
    this.finished = true;
    this.playing = false;
    this.dry = false; // the turn ran out of audio before its end came
    this.quanta = 0;
    this.history = []; // [time, turn, played before that quantum], oldest first
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "chunk") {
      if (message.turn <= this.clearedThrough) return;
      this.queue.push({ turn: message.turn, samples: message.samples });
      this.queued += message.samples.length;
    } else if (message.type === "end") {
      this.endedThrough = Math.max(this.endedThrough, message.turn);
      if (this.dry && message.turn === this.turn) this.finish(); // it had all played already
    } else if (message.type === "clear") {
      this.clear(message.turn, message.at);
    }
  }

  clear(turn, at) {
    this.clearedThrough = Math.max(this.clearedThrough, turn);
    let dropped = 0;
    const kept = [];
    this.queue.forEach((chunk, index) => {
      const left = chunk.samples.length - (index === 0 ? this.head : 0);
      if (chunk.turn <= turn) dropped += left;
      else kept.push(chunk);
    });
    if (kept[0] !== this.queue[0]) this.head = 0;
    this.queue = kept;
    this.queued -= dropped;
    let playedAfter = 0;
    if (this.turn === turn) {
      const mark = this.history.find((entry) => entry[1] === turn && entry[0] >= at);
      const oldest = this.history[0];
      if (mark) playedAfter = this.played - mark[2];
      else if (oldest && oldest[0] > at) playedAfter = null; // older than the history: unknown
      this.playing = false;
      this.finished = true;
      this.dry = false;
    }
    this.port.postMessage({
      type: "cleared", turn, played: this.turn === turn ? this.played : 0, playedAfter, dropped,
    });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    this.history.push([currentTime, this.turn, this.played]);
    if (this.history.length > HISTORY) this.history.shift();
    if (!this.playing && this.queued > 0) {
      const next = this.queue[0].turn;
      this.playing = this.queued >= this.prebuffer || next <= this.endedThrough;
    }
    let written = 0;
    const before = this.played;
    while (this.playing && written < out.length && this.queue.length > 0) {
      const chunk = this.queue[0];
      if (chunk.turn !== this.turn) this.begin(chunk.turn);
      else if (this.dry) this.underruns++;
      this.dry = false;
      const count = Math.min(out.length - written, chunk.samples.length - this.head);
      let hash = this.hash;
      for (let i = 0; i < count; i++) {
        const sample = chunk.samples[this.head + i];
        out[written + i] = sample / 32768;
        hash = Math.imul(hash ^ (sample & 0xffff), FNV_PRIME) >>> 0;
      }
      this.hash = hash;
      written += count;
      this.head += count;
      this.played += count;
      this.queued -= count;
      if (this.head === chunk.samples.length) {
        this.queue.shift();
        this.head = 0;
      }
    }
    out.fill(0, written);
    if (this.playing && this.queue.length === 0) {
      this.playing = false;
      if (this.turn <= this.endedThrough) this.finish();
      else this.dry = true;
    }
    if (this.played !== before && this.quanta++ % this.reportEvery === 0) {
      this.port.postMessage({
        type: "progress", turn: this.turn, played: before, time: currentTime,
        hash: this.hash, underruns: this.underruns,
      });
    }
    return true;
  }

  begin(turn) {
    if (!this.finished) this.finish();
    this.turn = turn;
    this.played = 0;
    this.hash = FNV_OFFSET;
    this.underruns = 0;
    this.finished = false;
    this.quanta = 0;
  }

  finish() {
    this.finished = true;
    this.dry = false;
    this.port.postMessage({
      type: "finished", turn: this.turn, played: this.played, hash: this.hash,
      underruns: this.underruns,
    });
  }
}

registerProcessor("voicebridge-player", VoicebridgePlayer);
