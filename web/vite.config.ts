import react from '@vitejs/plugin-react'
import { compression, defineAlgorithm } from 'vite-plugin-compression2'
import { defineConfig } from 'vitest/config'

/** Where `aimake serve` listens by default; the dev server forwards server routes there. */
const BACKEND = 'http://127.0.0.1:8000'

/** Route prefixes owned by the Rust server rather than by the SPA. */
const SERVER_PREFIXES = ['/api', '/health', '/media', '/feeds']

export default defineConfig({
  plugins: [
    react(),
    // The server serves `X.br` / `X.gz` next to `X` by Accept-Encoding, so every
    // text asset gets both variants, however small, and the originals stay.
    compression({
      include: /\.(js|mjs|css|svg)$/,
      threshold: 0,
      skipIfLargerOrEqual: false,
      deleteOriginalAssets: false,
      algorithms: [
        defineAlgorithm('gzip', { level: 9 }),
        defineAlgorithm('brotliCompress'),
      ],
    }),
  ],
  build: {
    // The app, and the API reference page the server answers at `/api/docs`.
    rolldownOptions: { input: ['index.html', 'api-docs.html'] },
    // The reference page's one bundle (RapiDoc, about 850 kB, 220 kB gzipped) is loaded by
    // that page alone.
    chunkSizeWarningLimit: 1000,
  },
  server: {
    proxy: Object.fromEntries(SERVER_PREFIXES.map((prefix) => [prefix, { target: BACKEND }])),
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    restoreMocks: true,
    unstubGlobals: true,
    // Room for the waits in src/test/setup.ts on a loaded machine.
    testTimeout: 20000,
  },
})
