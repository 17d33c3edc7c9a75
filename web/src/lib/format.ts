// Numbers, sizes, durations, dates and money shown the same way on every page.

import type { Language } from '../i18n.ts'

export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return '–'
  const total = Math.round(ms / 1000)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m)
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`
}

/** Seconds as "0.4 ms", "340 ms" under a second, else "2.5 s". */
export function formatSeconds(seconds: number | null, language: Language): string {
  if (seconds === null || !Number.isFinite(seconds)) return '–'
  const number = (digits: number) => new Intl.NumberFormat(language, { maximumFractionDigits: digits })
  return seconds < 1
    ? `${number(seconds < 0.01 ? 1 : 0).format(seconds * 1000)} ms`
    : `${number(2).format(seconds)} s`
}

/** A fraction as a percentage: 0.123 is "12.3%". */
export function formatPercent(fraction: number | null, language: Language): string {
  if (fraction === null || !Number.isFinite(fraction)) return '–'
  return new Intl.NumberFormat(language, { style: 'percent', maximumFractionDigits: 1 }).format(fraction)
}

export function formatBytes(bytes: number | null, language: Language): string {
  if (bytes === null || !Number.isFinite(bytes)) return '–'
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1
  return `${new Intl.NumberFormat(language, { maximumFractionDigits: digits }).format(value)} ${units[unit]}`
}

export function formatNumber(value: number, language: Language): string {
  return new Intl.NumberFormat(language).format(value)
}

export function formatDate(iso: string, language: Language): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return new Intl.DateTimeFormat(language, { dateStyle: 'medium', timeStyle: 'short' }).format(date)
}

/** Micro-dollars as dollars; amounts under a dollar keep enough digits to not read as zero. */
export function formatMoney(micros: number, language: Language): string {
  const dollars = micros / 1_000_000
  const digits = dollars !== 0 && Math.abs(dollars) < 1 ? 4 : 2
  return new Intl.NumberFormat(language, {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: 2,
    maximumFractionDigits: digits,
  }).format(dollars)
}

/** `YYYY-MM-DD` of a date in UTC, as the usage API counts days. */
export function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10)
}
