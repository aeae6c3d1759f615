/**
 * A test page's script for Chromium: `entry` (a .tsx under test/) bundled by esbuild for the
 * browser, as one ES module in memory, React in development mode (its warnings reach the console).
 */
import { build } from 'esbuild'

export async function bundleTestPage(entry: string): Promise<string> {
  const bundle = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'silent',
  })
  return bundle.outputFiles[0]!.text
}
