/** `runPipeline`'s `debugDir`: each stage's output saved as a JSON file. Internal. */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { outputJsonReplacer, serialiseOutput } from './stage-output.js'

/** The debug file's JSON: like the sent output (a BigInt as its decimal string, the placeholder when it cannot be JSON). */
function debugJson(output: unknown): string {
  try {
    return JSON.stringify(output, outputJsonReplacer, 2) ?? 'null'
  } catch {
    return JSON.stringify(serialiseOutput(output).text ?? null)
  }
}

/** Saves the output as `<debugDir>/<runId>/stage_<N>_output.json`. */
export async function saveOutput(debugDir: string, runId: string, stageNumber: number, output: unknown): Promise<void> {
  // A run id is URL-safe but may still be '..' or hold a separator; keep it inside debugDir.
  const safe = /^[A-Za-z0-9_:~-][A-Za-z0-9._:~-]*$/.test(runId) ? runId : encodeURIComponent(runId).replaceAll('.', '%2E')
  const dir = join(debugDir, safe)
  await mkdir(dir, { recursive: true })
  // Like the original's json.dump(output, indent=2); a string is saved as a JSON string.
  const text = output === undefined || typeof output === 'string' ? JSON.stringify(output ?? null, null, 2) : debugJson(output)
  await writeFile(join(dir, `stage_${stageNumber}_output.json`), `${text}\n`, 'utf8')
}
