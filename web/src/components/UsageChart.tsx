// Stacked bars per day and service, drawn as SVG; the table next to it carries the numbers.

import { serviceColor } from '../lib/usage.ts'
import type { UsageSeries } from '../lib/usage.ts'

const HEIGHT = 160
const GAP = 2

export function UsageChart({ series, label }: { series: UsageSeries; label: string }) {
  const count = Math.max(1, series.days.length)
  const width = Math.max(count * 8, 300)
  const barWidth = width / count - GAP
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${width} ${HEIGHT}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={label}
    >
      <line x1={0} x2={width} y1={HEIGHT - 0.5} y2={HEIGHT - 0.5} className="chart-axis" />
      {series.days.map((column, dayIndex) => {
        let y = HEIGHT
        return (
          <g key={column.day}>
            <title>{column.day}</title>
            {column.values.map((value, serviceIndex) => {
              if (value <= 0 || series.max <= 0) return null
              const h = (value / series.max) * (HEIGHT - 4)
              y -= h
              return (
                <rect
                  key={serviceIndex}
                  x={dayIndex * (barWidth + GAP)}
                  y={y}
                  width={barWidth}
                  height={h}
                  fill={serviceColor(serviceIndex)}
                />
              )
            })}
          </g>
        )
      })}
    </svg>
  )
}
