// Waveform peaks from the server, shaped for drawing.

/** Peaks scaled to 0..1 whatever the server's scale (floats, 16-bit ints, signed pairs). */
export function normalizePeaks(peaks: readonly number[]): number[] {
  let max = 0
  for (const p of peaks) if (Number.isFinite(p)) max = Math.max(max, Math.abs(p))
  if (max === 0) return peaks.map(() => 0)
  return peaks.map((p) => (Number.isFinite(p) ? Math.abs(p) / max : 0))
}

/** Averages `peaks` down (or repeats them up) to `bars` values, keeping the loudest per bar. */
export function bucketPeaks(peaks: readonly number[], bars: number): number[] {
  if (peaks.length === 0 || bars <= 0) return []
  const out: number[] = []
  for (let i = 0; i < bars; i++) {
    const start = Math.floor((i * peaks.length) / bars)
    const end = Math.max(start + 1, Math.floor(((i + 1) * peaks.length) / bars))
    let loudest = 0
    for (let j = start; j < end && j < peaks.length; j++) loudest = Math.max(loudest, peaks[j] ?? 0)
    out.push(loudest)
  }
  return out
}
