// Browser tests against the real binary: `AIMAKE_BIN=path/to/aimake npm run e2e`.
// Debian's Chromium (no browser download), headless, one fresh server per run.
//
//   AIMAKE_BIN        the binary to test (required)
//   CHROMIUM          browser executable (default /usr/bin/chromium)
//   E2E_ONLY          run only journeys whose name contains this text
//   E2E_SCREENSHOTS   directory to save page screenshots into (e.g. ../docs/screenshots)
//   E2E_KEEP=1        keep the temp data dir for a look afterwards
//   AIMAKE_FIXTURES   the neural model fixtures (`make fixtures`; default ~/.cache/aimake/fixtures),
//                     served as the models mirror so the Models page pulls real files offline

import { mkdir, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'
import { startMirror, startServer } from './server.mjs'

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
]
/** Synthesis with the local voice takes well under a second; rendering an episode a few. */
const JOB_TIMEOUT_MS = 60_000
const ADMIN = { email: 'admin@example.com', password: 'e2e-password-123' }
/** The smallest model the fixtures hold, and the files its pull must fetch. */
const PIPER_MODEL = 'piper:en_US-joe-medium'
const PIPER_FILES = ['en_US-joe-medium.onnx', 'en_US-joe-medium.onnx.json']

const bin = process.env.AIMAKE_BIN
if (!bin) {
  console.error('Set AIMAKE_BIN to the aimake binary, e.g. AIMAKE_BIN=../target/release/aimake npm run e2e')
  process.exit(2)
}
const shots = process.env.E2E_SCREENSHOTS ? resolve(process.env.E2E_SCREENSHOTS) : null
if (shots) await mkdir(shots, { recursive: true })

function check(condition, message) {
  if (!condition) throw new Error(message)
}

async function screenshot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
}

/** Loads the player's audio and returns its duration in seconds as the browser decoded it. */
async function decodedDuration(page, label) {
  const audio = page.getByLabel(label, { exact: true })
  await audio.waitFor()
  return audio.evaluate(
    (element) =>
      new Promise((done, fail) => {
        const media = /** @type {HTMLAudioElement} */ (element)
        if (Number.isFinite(media.duration) && media.duration > 0) return done(media.duration)
        media.addEventListener('loadedmetadata', () => done(media.duration), { once: true })
        media.addEventListener('error', () => fail(new Error(`audio failed to load: ${media.error?.message}`)), {
          once: true,
        })
        media.preload = 'auto'
        media.load()
      }),
  )
}

async function signIn(page, { email, password }) {
  await page.goto('/login')
  await page.getByLabel('Email', { exact: true }).fill(email)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Studio' }).waitFor()
}

const journeys = [
  {
    name: 'a new admin sets up, speaks a text, finds it in the library, downloads and deletes it',
    async run({ page, server }) {
      check(server.setupUrl !== null, 'the server logged no setup link')
      await page.goto(server.setupUrl)
      check((await page.getByLabel('Setup token', { exact: true }).inputValue()) !== '', 'the setup token was not filled in')
      await page.getByLabel('Email', { exact: true }).fill(ADMIN.email)
      await page.getByLabel('Password', { exact: true }).fill(ADMIN.password)
      await page.getByRole('button', { name: 'Create administrator' }).click()
      await page.getByRole('heading', { name: 'Studio' }).waitFor()

      await page.getByLabel('Text to speak', { exact: true }).fill('Hello from the end to end test. This is the local voice.')
      await page.getByLabel('Voice', { exact: true }).selectOption({ value: await localVoice(page, 'en') })
      await page.getByLabel('Title (optional)', { exact: true }).fill('E2E hello')
      await screenshot(page, 'studio')
      await page.getByRole('button', { name: 'Generate' }).click()
      await page.getByRole('progressbar', { name: 'Generation progress' }).or(page.getByLabel('Player: E2E hello', { exact: true })).first().waitFor()
      const seconds = await decodedDuration(page, 'Player: E2E hello')
      check(seconds > 0, `the audio has no duration (${seconds})`)

      await page.getByRole('link', { name: 'Library', exact: true }).click()
      const item = page.getByRole('listitem').filter({ hasText: 'E2E hello' })
      await item.waitFor()
      await item.getByRole('button', { name: /^Play/ }).click()
      await page.getByRole('slider', { name: 'Position in E2E hello' }).waitFor()
      await screenshot(page, 'library')
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        item.getByRole('link', { name: 'Download' }).click(),
      ])
      const size = (await stat(await download.path())).size
      check(size > 1000, `the download has only ${size} bytes`)

      await item.getByRole('button', { name: 'Delete' }).click()
      await item.getByRole('group').getByRole('button', { name: 'Delete' }).click()
      await item.waitFor({ state: 'detached' })
      await page.reload()
      await page.getByRole('heading', { name: 'Library' }).waitFor()
      check((await page.getByText('E2E hello').count()) === 0, 'the deleted audio came back after a reload')
    },
  },
  {
    name: 'a podcast episode is rendered from a pasted dialogue with two local voices',
    async run({ page }) {
      await signIn(page, ADMIN)
      await page.getByRole('link', { name: 'Podcasts' }).click()
      await page.getByRole('button', { name: 'New show' }).click()
      await page.getByLabel('Show title', { exact: true }).fill('E2E show')
      await page.getByRole('button', { name: 'Create show' }).click()
      await page.getByRole('heading', { name: 'E2E show', level: 1 }).waitFor()
      await page.getByRole('link', { name: 'New episode' }).first().click()

      await page.getByLabel('A pasted dialogue', { exact: true }).check()
      await page
        .getByLabel('Dialogue', { exact: true })
        .fill('## Opening\nAlice: Welcome to the show.\nBob: Thanks for having me.\n## Close\nAlice: Goodbye.')
      await page.getByText('3 lines, 2 speakers').waitFor()
      await page.getByRole('button', { name: 'Next' }).click()
      const voices = await localVoices(page)
      check(voices.length >= 2, `needs two local voices, found ${voices.length}`)
      await page.getByLabel('Voice for Alice', { exact: true }).selectOption(voices[0])
      await page.getByLabel('Voice for Bob', { exact: true }).selectOption(voices[1])
      await page.getByRole('button', { name: 'Next' }).click()
      await page.getByLabel('Episode title', { exact: true }).fill('E2E episode')
      await screenshot(page, 'episode-editor')
      await page.getByRole('button', { name: 'Render episode' }).click()

      await page.getByRole('link', { name: 'Download MP3' }).waitFor({ timeout: JOB_TIMEOUT_MS })
      const seconds = await decodedDuration(page, 'Player: E2E episode')
      check(seconds > 1, `the episode is too short (${seconds} s)`)
      await page.getByRole('list', { name: 'Chapters' }).getByText('Close').waitFor()
      for (const format of ['VTT', 'SRT']) {
        const href = await page.getByRole('link', { name: `Download ${format}` }).getAttribute('href')
        const response = await page.request.get(href)
        check(response.ok(), `${format} answered ${response.status()}`)
        check((await response.text()).includes('Alice'), `${format} subtitles do not name the speaker`)
      }
      await screenshot(page, 'episode')
    },
  },
  {
    name: 'a wrong password gets a clear message',
    async run({ page }) {
      await page.goto('/login')
      await page.getByLabel('Email', { exact: true }).fill(ADMIN.email)
      await page.getByLabel('Password', { exact: true }).fill('not the password')
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor()
      await screenshot(page, 'login-failed')
    },
  },
  {
    name: 'the interface switches to Chinese and remembers it',
    async run({ page }) {
      await signIn(page, ADMIN)
      await page.getByLabel('Language', { exact: true }).selectOption('zh-CN')
      await page.getByRole('heading', { name: '工作室' }).waitFor()
      await page.reload()
      await page.getByRole('heading', { name: '工作室' }).waitFor()
      await page.getByRole('link', { name: '音频库' }).waitFor()
      check((await page.locator('html').getAttribute('lang')) === 'zh-CN', '<html lang> is not zh-CN')
      await screenshot(page, 'studio-zh-CN')
    },
  },
  {
    name: 'every main page fits a 360 px wide phone',
    viewport: { width: 360, height: 740 },
    async run({ page }) {
      await signIn(page, ADMIN)
      for (const path of ['/studio', '/library', '/transcripts', '/podcasts', '/usage', '/settings', '/admin', '/admin/models', '/admin/monitoring']) {
        await page.goto(path)
        await page.getByRole('heading', { level: 1 }).first().waitFor()
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
        check(overflow <= 0, `${path} is ${overflow} px wider than the screen`)
      }
      await page.goto('/studio')
      await page.getByRole('heading', { name: 'Studio' }).waitFor()
      await page.getByRole('combobox', { name: 'Voice', exact: true }).locator('option').first().waitFor({ state: 'attached' })
      await screenshot(page, 'studio-360px')
      // The header's controls stay reachable from the keyboard.
      await page.keyboard.press('Tab')
      check(
        (await page.evaluate(() => document.activeElement?.textContent)) === 'Skip to content',
        'the first Tab does not reach the skip link',
      )
    },
  },
  {
    name: 'usage, settings and admin pages load with real data',
    async run({ page }) {
      await signIn(page, ADMIN)
      await page.goto('/usage')
      await page.getByRole('row', { name: /Total/ }).waitFor()
      await screenshot(page, 'usage')
      await page.goto('/settings')
      await page.getByLabel('Token name', { exact: true }).fill('e2e')
      await page.getByRole('button', { name: 'Create token' }).click()
      const token = await page.getByLabel('Token', { exact: true }).inputValue()
      check(token.startsWith('amk_'), `unexpected token ${token.slice(0, 4)}…`)
      await page.goto('/admin')
      await page.getByRole('heading', { name: 'Users' }).waitFor()
      await page.getByText(ADMIN.email).waitFor()
      await screenshot(page, 'admin')
    },
  },
  {
    name: 'an admin sees the server drawn minute by minute on the Monitoring page',
    async run({ page }) {
      await signIn(page, ADMIN)
      await page.getByRole('link', { name: 'Monitoring' }).click()
      await page.getByRole('heading', { name: 'Monitoring', level: 1 }).waitFor()
      const requests = page.getByRole('figure', { name: 'Requests per second' })
      const canvas = requests.locator('canvas').first()
      await canvas.waitFor()
      // uPlot drew axes and lines: the canvas has pixels that are not blank.
      const drawn = await canvas.evaluate((element) => {
        const c = /** @type {HTMLCanvasElement} */ (element)
        const pixels = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? []
        let inked = 0
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++
        return { width: c.width, inked }
      })
      check(drawn.width > 0 && drawn.inked > 0, `the requests chart is blank: ${JSON.stringify(drawn)}`)
      check((await page.getByRole('figure').count()) === 10, 'not every chart is shown')
      await screenshot(page, 'monitoring')
      await Promise.all([
        page.waitForResponse((r) => r.url().includes('/api/admin/metrics/series?range=24h') && r.ok()),
        page.getByRole('button', { name: 'Last 24 hours' }).click(),
      ])
      await page.getByRole('button', { name: 'Last 24 hours', pressed: true }).waitFor()
      await page.getByText('No notifiers are configured', { exact: false }).waitFor()
      await page.getByText('No alert has fired yet.').waitFor()
    },
  },
  {
    name: 'an admin pulls a Piper voice on the Models page and it is verified and installed',
    async run({ page }) {
      await signIn(page, ADMIN)
      await page.goto('/admin/models')
      await page.getByRole('heading', { name: 'Models' }).waitFor()
      const row = page.getByRole('row', { name: new RegExp(PIPER_MODEL) })
      check((await row.getByRole('cell', { name: 'No', exact: true }).count()) === 1, `${PIPER_MODEL} is installed before the pull`)
      await row.getByRole('button', { name: `Pull ${PIPER_MODEL}` }).click()
      // Installed only once every file arrived and matched its size and sha256.
      await row.getByRole('cell', { name: 'Yes', exact: true }).waitFor({ timeout: JOB_TIMEOUT_MS })
      check(
        PIPER_FILES.every((file) => mirror.requests.includes(file)),
        `the pull did not fetch ${PIPER_FILES.join(' and ')} from the mirror: ${mirror.requests.join(', ')}`,
      )
      await row.getByRole('button', { name: /Remove/ }).waitFor()
      await screenshot(page, 'models')
    },
  },
  {
    name: 'the API reference renders every operation offline under the page policy',
    async run({ page, server }) {
      const refused = []
      page.on('console', (message) => {
        if (/Content Security Policy|Refused to/i.test(message.text())) refused.push(message.text())
      })
      const elsewhere = []
      page.on('request', (request) => {
        const url = request.url()
        if (!url.startsWith(server.baseUrl) && !/^(data|blob):/.test(url)) elsewhere.push(url)
      })
      await page.goto('/api/docs')
      await page.getByText("Speak a text (OpenAI's speech API)").first().waitFor()
      await page.getByText('Transcribe a recording or a library audio').first().waitFor()
      await screenshot(page, 'api-reference')
      check(refused.length === 0, `the page policy refused: ${refused.join('\n')}`)
      check(elsewhere.length === 0, `the reference page reached off the server: ${elsewhere.join(', ')}`)
    },
  },
]

/** Local voices offered in the first voice picker, preferring the UI language's. */
async function localVoices(page) {
  const select = page.getByRole('combobox').filter({ has: page.locator('optgroup[label="Local"]') }).first()
  await select.locator('optgroup[label="Local"] option').first().waitFor({ state: 'attached' })
  return select.locator('optgroup[label="Local"] option:not([disabled])').evaluateAll((options) =>
    options.map((o) => /** @type {HTMLOptionElement} */ (o).value),
  )
}

async function localVoice(page, language) {
  const voices = await localVoices(page)
  check(voices.length > 0, 'no local voice is available (is espeak-ng installed?)')
  return voices.find((v) => v.toLowerCase().includes(`:${language}`)) ?? voices[0]
}

/** Creates the admin through the API when the journey that does it in the browser is skipped. */
async function ensureAdmin(server) {
  if (server.setupUrl === null) return
  const token = new URL(server.setupUrl).searchParams.get('token')
  const response = await fetch(`${server.baseUrl}/api/setup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: server.baseUrl },
    body: JSON.stringify({ setup_token: token, ...ADMIN }),
  })
  check(response.status === 201, `setting up the admin answered ${response.status}`)
}

const only = process.env.E2E_ONLY
const chosen = journeys.filter((j) => !only || j.name.includes(only))
const fixtures = process.env.AIMAKE_FIXTURES || join(homedir(), '.cache/aimake/fixtures')
const mirror = await startMirror(join(fixtures, 'mirror'))
// Nothing is fetched from the internet: first-run pulls are off and pulls use the mirror.
const server = await startServer(bin, {
  env: { AIMAKE_MODELS__AUTO_PULL: 'false', AIMAKE_MODELS__MIRROR: mirror.url },
})
if (chosen[0] !== journeys[0]) await ensureAdmin(server)
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: FLAGS,
})
let passed = 0
let failed = 0
try {
  for (const journey of chosen) {
    const context = await browser.newContext({
      baseURL: server.baseUrl,
      acceptDownloads: true,
      locale: 'en-US',
      viewport: journey.viewport ?? { width: 1280, height: 900 },
    })
    context.setDefaultTimeout(JOB_TIMEOUT_MS / 4)
    const page = await context.newPage()
    const problems = []
    page.on('pageerror', (error) => problems.push(`page error on ${page.url()}: ${error.stack ?? error.message}`))
    const started = Date.now()
    try {
      await journey.run({ page, server })
      check(problems.length === 0, problems.join('\n'))
      passed++
      console.log(`ok   ${journey.name} (${Date.now() - started} ms)`)
    } catch (error) {
      failed++
      console.log(`FAIL ${journey.name}\n     ${String(error?.stack ?? error).split('\n').join('\n     ')}`)
      if (problems.length > 0) console.log(`     ${problems.join('\n     ')}`)
      await page.screenshot({ path: join(server.dataDir, `failed-${passed + failed}.png`) }).catch(() => {})
    } finally {
      await context.close()
    }
  }
} finally {
  await browser.close()
  if (failed > 0) console.log(`server log (last lines):\n${server.logs.slice(-30).join('\n')}`)
  await server.stop()
  await mirror.close()
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
