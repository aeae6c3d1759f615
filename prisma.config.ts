import { defineConfig } from 'prisma/config'

// The URL is read only when a command needs a database (`prisma migrate deploy`, `db pull`);
// `prisma generate` works without one, so an unset DATABASE_URL is not an error here.
const url = process.env['DATABASE_URL']

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  ...(url ? { datasource: { url } } : {}),
})
