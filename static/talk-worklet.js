// The console's hold-to-talk capture, on the audio thread: the microphone's samples as 16-bit mono PCM chunks.
// Loaded by talk.js with audioWorklet.addModule (from the relay itself: the page's CSP allows nothing else).
"use strict";

class PcmChunks extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.chunk = new Int16Array(options.processorOptions.chunkFrames);
    this.filled = 0;
    this.sumOfSquares = 0;
    this.port.onmessage = () => this.send(true); // the key or the button was let go: what is left, now
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0]; // mono: the first channel (getUserMedia asked for one)
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const sample = Math.max(-1, Math.min(1, channel[i]));
      this.sumOfSquares += sample * sample;
      this.chunk[this.filled++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
      if (this.filled === this.chunk.length) this.send(false);
    }
    return true;
  }

  send(last) {
    const pcm = this.chunk.slice(0, this.filled);
    const level = this.filled ? Math.sqrt(this.sumOfSquares / this.filled) : 0;
    this.port.postMessage({ pcm: pcm.buffer, level, last }, [pcm.buffer]);
    this.filled = 0;
    this.sumOfSquares = 0;
  }
}

registerProcessor("pcm-chunks", PcmChunks);
