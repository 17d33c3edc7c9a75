import { spawn } from 'node:child_process'
import { chromium } from 'playwright-core'
const port = 4173 + Math.floor(Math.random() * 1000)
const vite = spawn('npx', ['vite', 'preview', '--port', String(port), '--strictPort', '--host', '127.0.0.1'], { stdio: 'pipe' })
await new Promise((r) => vite.stdout.on('data', (d) => String(d).includes('Local') && r()))
const base = `http://127.0.0.1:${port}`
const me = { id: 'U1', email: 'ada@example.com', display_name: 'Ada', role: 'admin', created_at: '2026-01-01T00:00:00Z', quota: { chars_per_month: 100000, chars_used_this_month: 23500 } }
const a = (id, title, extra = {}) => ({ id, title, kind: 'tts', status: 'succeeded', progress: 1, voice: 'local:en-us', format: 'mp3', speed: 1, chars: 120, duration_ms: 8300, size_bytes: 133000, error: null, file_url: `/api/audios/${id}/file`, peaks_url: `/api/audios/${id}/peaks`, created_at: '2026-11-24T10:00:00Z', updated_at: '2026-11-24T10:00:00Z', ...extra })
const peaks = Array.from({ length: 400 }, (_, i) => Math.abs(Math.sin(i / 7) * Math.sin(i / 31)) + 0.05)
const routes = {
  '/api/me': me,
  '/api/setup': { needed: false, registration: 'invite' },
  '/api/providers': [{ id: 'local', kind: 'tts', available: true, detail: '' }, { id: 'openai', kind: 'tts', available: true, detail: '' }, { id: 'elevenlabs', kind: 'tts', available: false, detail: '' }],
  '/api/voices': [{ id: 'local:en-us', provider: 'local', name: 'English (US)', language: 'en-US', gender: null }, { id: 'local:cmn', provider: 'local', name: 'Mandarin', language: 'zh-CN', gender: null }, { id: 'openai:alloy', provider: 'openai', name: 'Alloy', language: 'en-US', gender: null }, { id: 'elevenlabs:rachel', provider: 'elevenlabs', name: 'Rachel', language: 'en-US', gender: null }],
  '/api/audios': { items: [a('A1', 'Morning news briefing'), a('A2', 'A very long title for a chapter of an audiobook that wraps on phones', { status: 'running', progress: 0.45, duration_ms: null }), a('A3', 'Welcome message', { status: 'failed', error: { code: 'provider_error', message: 'OpenAI rejected the API key' } })], next_cursor: 'x' },
  '/api/audios/A1/peaks': { sample_rate: 50, duration_ms: 8300, peaks },
  '/api/usage': [{ day: '2026-11-20', service: 'tts:local', units: 3400, cost_micros: 0 }, { day: '2026-11-21', service: 'tts:openai:tts-1', units: 9000, cost_micros: 135000 }, { day: '2026-11-23', service: 'tts:local', units: 5000, cost_micros: 0 }, { day: '2026-11-24', service: 'llm:gpt-4o-mini', units: 2000, cost_micros: 1200 }],
  '/api/podcasts': { items: [{ id: 'P1', title: 'Weekly tea', description: 'Tea and code', language: 'en', author: 'Ada', public: true, created_at: '2026-11-01T00:00:00Z' }], next_cursor: null },
  '/api/podcasts/P1': { id: 'P1', title: 'Weekly tea', description: 'Tea and code', language: 'en', author: 'Ada', public: true, created_at: '2026-11-01T00:00:00Z' },
  '/api/podcasts/P1/episodes': { items: [{ id: 'E1', title: 'Pilot', audio: a('EA1', 'Pilot', { kind: 'podcast' }), lines: [] }], next_cursor: null },
  '/api/audios/EA1/peaks': { sample_rate: 50, duration_ms: 8300, peaks },
  '/api/podcasts/P1/episodes/E1/chapters.json': { chapters: [{ startTime: 0, title: 'Opening' }, { startTime: 4, title: 'News' }] },
  '/api/tokens': [{ id: 'T1', name: 'laptop', created_at: '2026-11-01T00:00:00Z' }],
  '/api/admin/system': { version: '0.1.0', uptime_s: 86000, db_bytes: 2200000, jobs: { queued: 0, running: 1, failed_24h: 2 }, storage: { kind: 'local', objects: 42 } },
  '/api/admin/users': { items: [me, { ...me, id: 'U2', email: 'bob@example.com', display_name: null, role: 'user', disabled: false }], next_cursor: null },
  '/api/admin/invites': [{ code: 'JX7Q-P2MV', created_at: '2026-11-24T00:00:00Z', expires_at: '2026-12-01T00:00:00Z' }],
  '/api/admin/backups': [{ name: 'aimake-2026-11-24T03-00.db.zst', size_bytes: 880000, sha256: 'ab', created_at: '2026-11-24T03:00:00Z' }],
}
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'] })
for (const [w, h, lang] of [[1280, 900, 'en'], [360, 740, 'en'], [360, 740, 'zh-CN']]) {
  const ctx = await browser.newContext({ viewport: { width: w, height: h }, locale: lang === 'en' ? 'en-US' : 'zh-CN' })
  await ctx.route(/\/(api|health)\//, (route) => {
    const path = new URL(route.request().url()).pathname
    const body = routes[path]
    if (body === undefined) return route.fulfill({ status: 404, json: { error: { code: 'not_found', message: 'nope' } } })
    return route.fulfill({ json: body })
  })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => console.log('pageerror', e.message))
  for (const p of (process.env.PAGES ?? '/studio,/library,/podcasts/P1,/usage,/settings,/admin,/login,/podcasts/P1/new').split(',')) {
    await page.goto(base + p)
    await page.waitForTimeout(600)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    if (overflow > 0) console.log(`${w} ${p} overflows by ${overflow}`)
    await page.screenshot({ path: `/tmp/shots/${w}-${lang}${p.replaceAll('/', '_')}.png`, fullPage: true })
  }
  await ctx.close()
}
await browser.close()
vite.kill()
