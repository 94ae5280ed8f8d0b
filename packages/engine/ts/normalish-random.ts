// Seeded random numbers for random-weight models. Each tensor draws from its own
// stream keyed by (seed, tensor name), so a tensor's values do not depend on the
// order tensors are written in or on how they are split into shards.
//
// The generator is xoshiro128** (32-bit state words, fast in JavaScript); one
// 32-bit draw gives one value: the sum of its four bytes (Irwin–Hall of four
// discrete uniforms) is bell-shaped within ±3.45 standard deviations. That is
// "normal-ish" enough for weights and about ten times cheaper than Box–Muller,
// which matters for the multi-billion-parameter presets.

const FOUR_BYTES_MEAN = 510; // 4 * 255 / 2
const FOUR_BYTES_STD = Math.sqrt((4 * (256 * 256 - 1)) / 12);

export class NormalishRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(key: string) {
    // FNV-1a over the key, then splitmix32 to spread it over the four state words.
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) {
      h ^= key.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      h = (h + 0x9e3779b9) | 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      words.push((z ^ (z >>> 16)) | 0);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** The stream of one tensor of a model generated with `seed`. */
  static forTensor(seed: number, tensorName: string): NormalishRandom {
    return new NormalishRandom(`${seed}\u0000${tensorName}`);
  }

  /** Fills `out` with the next out.length values of mean `mean` and standard deviation `std`. */
  fill(out: Float32Array, mean: number, std: number): void {
    let { s0, s1, s2, s3 } = this;
    const scale = std / FOUR_BYTES_STD;
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      const sum = (r & 255) + ((r >>> 8) & 255) + ((r >>> 16) & 255) + (r >>> 24);
      out[i] = mean + (sum - FOUR_BYTES_MEAN) * scale;
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
