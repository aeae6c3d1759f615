import { defineConfig } from 'prisma/config'

// The URL is needed only by commands that talk to the database (`prisma migrate deploy`);
// `prisma generate` works without one.
const url = process.env['DATABASE_URL']

export default defineConfig({
  schema: 'prisma/schema.prisma',
  // The migrations that ship with pipeline-status-sdk create exactly the copied models.
  migrations: { path: 'node_modules/pipeline-status-sdk/prisma/migrations' },
  ...(url ? { datasource: { url } } : {}),
})
