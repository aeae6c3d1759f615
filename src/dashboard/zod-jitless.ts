/**
 * Imported first by main.tsx, before any module that builds a zod schema: zod decides when a
 * schema is built whether to compile its parser with `new Function`, probing eval once, and the
 * page's CSP (`script-src 'self'`) refuses that probe (a violation report on every page). The
 * interpreted parsers need no eval and parse the same. The package is marked free of side
 * effects, so main.tsx reads {@link ZOD_JITLESS}: a bare import would be dropped by the bundler.
 */
import { config } from 'zod'

/** `true` once zod is told to build its parsers without eval. */
export const ZOD_JITLESS: boolean = config({ jitless: true }).jitless === true
