// A time series line chart drawn by uPlot: as wide as its container (it follows resizes, down
// to a phone's width), coloured from the theme's CSS variables, and released on unmount.

import { useEffect, useRef } from 'react'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import type { AlignedData } from 'uplot'
import { useI18n } from '../i18n.ts'
import { isolatedPoints } from '../lib/monitoring.ts'
import { serviceColor } from '../lib/usage.ts'

const HEIGHT = 160
/** The axes' font, at CSS pixels (uPlot scales it for the screen). */
const AXIS_FONT = '12px system-ui, sans-serif'
/** Room beside the widest value label: tick and gap. */
const AXIS_PAD = 20
/** Before the container has a width (hidden, not laid out yet). */
const FALLBACK_WIDTH = 320

export interface ChartProps {
  /** What the chart shows, for screen readers. */
  label: string
  /** The minutes' starts (Unix seconds), then one array per line. */
  data: AlignedData
  /** One name per line, in the order of `data`. */
  lines: readonly string[]
  /** Writes a value for the axis and the legend. */
  format: (value: number) => string
}

function themeColor(element: Element, name: string, fallback: string): string {
  return getComputedStyle(element).getPropertyValue(name).trim() || fallback
}

/** The y axis as wide as its widest label (money in Chinese reads `US$0.50`). */
function axisWidth(u: uPlot, values: string[] | null): number {
  u.ctx.save()
  u.ctx.font = AXIS_FONT
  const widest = Math.max(0, ...(values ?? []).map((v) => u.ctx.measureText(v).width))
  u.ctx.restore()
  return Math.ceil(widest) + AXIS_PAD
}

export function Chart({ label, data, lines, format }: ChartProps) {
  const { t, language } = useI18n()
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const latest = useRef({ data, format })
  useEffect(() => {
    latest.current = { data, format }
  })
  const names = lines.join('\n')

  // Built again only when the lines or the language change; new data goes through setData.
  useEffect(() => {
    const element = box.current
    if (element === null) return
    const time = new Intl.DateTimeFormat(language, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
    const moment = new Intl.DateTimeFormat(language, { dateStyle: 'short', timeStyle: 'short' })
    const write = (value: number | null | undefined) =>
      value === null || value === undefined ? '–' : latest.current.format(value)

    const build = () => {
      plot.current?.destroy()
      const text = themeColor(element, '--muted', '#5d5d6b')
      const grid = themeColor(element, '--border', '#dcdce3')
      const axis = { stroke: text, font: AXIS_FONT, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }
      const options: uPlot.Options = {
        width: element.clientWidth || FALLBACK_WIDTH,
        height: HEIGHT,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [
          { ...axis, space: 60, values: (_u, splits) => splits.map((s) => time.format(new Date(s * 1000))) },
          { ...axis, size: axisWidth, values: (_u, splits) => splits.map((s) => write(s)) },
        ],
        series: [
          { label: t('chart.time'), value: (_u, v) => (v === null ? '–' : moment.format(new Date(v * 1000))) },
          ...names.split('\n').map((name, i) => ({
            label: name,
            stroke: serviceColor(i),
            width: 1.5,
            // Lines join neighbouring minutes; a minute alone is drawn as a dot.
            points: {
              show: true,
              size: 5,
              fill: serviceColor(i),
              filter: (u: uPlot, series: number) => isolatedPoints(u.data[series] ?? []),
            },
            value: (_u: uPlot, v: number | null) => write(v),
          })),
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      }
      plot.current = new uPlot(options, latest.current.data, element)
    }

    build()
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: element.clientWidth || FALLBACK_WIDTH, height: HEIGHT })
    })
    resize.observe(element)
    // The colours come from the theme: follow a switch between light and dark.
    const scheme = window.matchMedia('(prefers-color-scheme: dark)')
    scheme.addEventListener('change', build)
    return () => {
      resize.disconnect()
      scheme.removeEventListener('change', build)
      plot.current?.destroy()
      plot.current = null
    }
  }, [names, language, t])

  useEffect(() => {
    plot.current?.setData(data)
  }, [data])

  return <div ref={box} className="plot" role="img" aria-label={label} />
}
