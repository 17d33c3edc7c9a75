// The API reference page (`/api/docs`, built from `api-docs.html`): RapiDoc renders the
// server's OpenAPI document. Everything it needs is bundled here, so the page works offline
// under the app's Content-Security-Policy.
import 'rapidoc'
