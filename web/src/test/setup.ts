// Adds the DOM matchers (toBeInTheDocument, ...), quiets the browser APIs jsdom lacks, and
// unmounts rendered trees between tests.

import '@testing-library/jest-dom/vitest'
import { cleanup, configure } from '@testing-library/react'
import { afterEach, beforeEach, vi } from 'vitest'

// findBy* and waitFor wait for what the page does, not for a clock: a loaded machine (the
// Rust tests run beside these) may take more than the default second to render.
configure({ asyncUtilTimeout: 5000 })

beforeEach(() => {
  // jsdom has no media playback or canvas; the app treats both as optional.
  vi.spyOn(HTMLMediaElement.prototype, 'play').mockResolvedValue(undefined)
  vi.spyOn(HTMLMediaElement.prototype, 'pause').mockReturnValue(undefined)
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null)
})

afterEach(() => {
  cleanup()
  window.localStorage.clear()
})
