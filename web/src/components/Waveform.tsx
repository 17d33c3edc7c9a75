// Draws waveform peaks on a canvas and seeks by click, drag or arrow keys.

import { useEffect, useRef } from 'react'
import type { KeyboardEvent, PointerEvent } from 'react'
import { formatDuration } from '../lib/format.ts'
import { bucketPeaks, normalizePeaks } from '../lib/peaks.ts'

const BAR_WIDTH = 2
const BAR_GAP = 1
/** Seconds an arrow key moves; Page keys move ten times that. */
const KEY_STEP_S = 5

export function Waveform({
  peaks,
  progress,
  durationMs,
  label,
  onSeek,
}: {
  peaks: readonly number[]
  /** 0..1 of the audio already played. */
  progress: number
  durationMs: number
  label: string
  onSeek: (fraction: number) => void
}) {
  const canvasRef = useRef<HTMLCanvasElement>(null)

  useEffect(() => {
    const canvas = canvasRef.current
    if (canvas === null) return
    const draw = () => {
      const context = canvas.getContext('2d')
      if (context === null) return
      const ratio = window.devicePixelRatio || 1
      const width = canvas.clientWidth
      const height = canvas.clientHeight
      if (width === 0 || height === 0) return
      canvas.width = Math.round(width * ratio)
      canvas.height = Math.round(height * ratio)
      context.setTransform(ratio, 0, 0, ratio, 0, 0)
      context.clearRect(0, 0, width, height)
      const style = getComputedStyle(canvas)
      const played = style.getPropertyValue('--wave-played').trim() || '#4f46e5'
      const rest = style.getPropertyValue('--wave-rest').trim() || '#c7c7d1'
      const bars = bucketPeaks(normalizePeaks(peaks), Math.floor(width / (BAR_WIDTH + BAR_GAP)))
      const playedX = progress * width
      bars.forEach((value, index) => {
        const x = index * (BAR_WIDTH + BAR_GAP)
        const h = Math.max(1, value * height)
        context.fillStyle = x < playedX ? played : rest
        context.fillRect(x, (height - h) / 2, BAR_WIDTH, h)
      })
    }
    draw()
    if (typeof ResizeObserver === 'undefined') return
    const observer = new ResizeObserver(draw)
    observer.observe(canvas)
    return () => observer.disconnect()
  }, [peaks, progress])

  const seekAt = (event: PointerEvent<HTMLCanvasElement>) => {
    const box = event.currentTarget.getBoundingClientRect()
    if (box.width > 0) onSeek(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)))
  }

  const onKey = (event: KeyboardEvent<HTMLCanvasElement>) => {
    if (durationMs <= 0) return
    const step = (KEY_STEP_S * 1000) / durationMs
    const moves: Record<string, number> = {
      ArrowLeft: progress - step,
      ArrowDown: progress - step,
      ArrowRight: progress + step,
      ArrowUp: progress + step,
      PageDown: progress - 10 * step,
      PageUp: progress + 10 * step,
      Home: 0,
      End: 1,
    }
    const next = moves[event.key]
    if (next === undefined) return
    event.preventDefault()
    onSeek(Math.min(1, Math.max(0, next)))
  }

  const nowMs = progress * durationMs
  return (
    <canvas
      ref={canvasRef}
      className="waveform"
      role="slider"
      tabIndex={0}
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={Math.round(durationMs / 1000)}
      aria-valuenow={Math.round(nowMs / 1000)}
      aria-valuetext={`${formatDuration(nowMs)} / ${formatDuration(durationMs)}`}
      onPointerDown={seekAt}
      onKeyDown={onKey}
    />
  )
}
