/**
 * One comparable description of a PostgreSQL schema, built two ways: from Prisma's DMMF (what
 * `schema.prisma` asks for, following Prisma Migrate's naming and type conventions) and from
 * the catalogue of a database the migrations were applied to. Equal shapes mean the committed
 * migrations create exactly what the schema describes.
 *
 * Mappings the schema does not use yet throw instead of guessing, so a new kind of field makes
 * the drift test fail loudly until it is taught here.
 */
import type { Dmmf, DmmfField } from './schema-dmmf.js'

export interface ColumnShape {
  type: string
  notNull: boolean
  /** The column default as PostgreSQL prints it (`pg_get_expr`), or `null`. */
  default: string | null
}

export interface IndexShape {
  columns: string[]
  unique: boolean
  primary: boolean
}

export interface ForeignKeyShape {
  columns: string[]
  references: string
  referencedColumns: string[]
  onDelete: string
  onUpdate: string
}

export interface TableShape {
  columns: Record<string, ColumnShape>
  indexes: Record<string, IndexShape>
  foreignKeys: Record<string, ForeignKeyShape>
}

export interface SchemaShape {
  enums: Record<string, string[]>
  tables: Record<string, TableShape>
}

/** Runs one query and returns its rows (e.g. `prisma.$queryRawUnsafe`). */
export type Query = <Row>(sql: string) => Promise<Row[]>

const SCALAR_TYPES: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Float: 'double precision',
  Decimal: 'numeric(65,30)',
  Boolean: 'boolean',
  DateTime: 'timestamp(3) without time zone',
  Json: 'jsonb',
  Bytes: 'bytea',
}

const NATIVE_TYPES: Record<string, (args: string[]) => string> = {
  Text: () => 'text',
  VarChar: (args) => (args.length ? `character varying(${args.join(',')})` : 'character varying'),
  Char: (args) => `character(${args[0] ?? 1})`,
  Uuid: () => 'uuid',
  Integer: () => 'integer',
  SmallInt: () => 'smallint',
  BigInt: () => 'bigint',
  Boolean: () => 'boolean',
  DoublePrecision: () => 'double precision',
  Real: () => 'real',
  Decimal: (args) => `numeric(${args.join(',')})`,
  Timestamptz: (args) => `timestamp(${args[0] ?? 6}) with time zone`,
  Timestamp: (args) => `timestamp(${args[0] ?? 6}) without time zone`,
  Date: () => 'date',
  JsonB: () => 'jsonb',
  Json: () => 'json',
}

const REFERENTIAL_ACTIONS: Record<string, string> = {
  Cascade: 'CASCADE',
  Restrict: 'RESTRICT',
  NoAction: 'NO ACTION',
  SetNull: 'SET NULL',
  SetDefault: 'SET DEFAULT',
}

// pg_constraint.confdeltype / confupdtype
const CATALOG_ACTIONS: Record<string, string> = {
  a: 'NO ACTION',
  r: 'RESTRICT',
  c: 'CASCADE',
  n: 'SET NULL',
  d: 'SET DEFAULT',
}

/** What the schema asks for, by Prisma Migrate's conventions for PostgreSQL. */
export function expectedShape(dmmf: Dmmf): SchemaShape {
  const { enums, models, indexes } = dmmf.datamodel
  const tableOf = new Map(models.map((model) => [model.name, model.dbName ?? model.name]))
  const shape: SchemaShape = { enums: {}, tables: {} }

  for (const e of enums) shape.enums[e.dbName ?? e.name] = e.values.map((v) => v.dbName ?? v.name)
  const enumDbName = new Map(enums.map((e) => [e.name, e.dbName ?? e.name]))

  for (const model of models) {
    const table = tableOf.get(model.name) ?? model.name
    const columnOf = (field: string) => {
      const found = model.fields.find((f) => f.name === field)
      return found?.dbName ?? field
    }
    const tableShape: TableShape = { columns: {}, indexes: {}, foreignKeys: {} }
    for (const field of model.fields) {
      if (field.kind === 'object') {
        if (field.relationFromFields?.length) {
          const columns = field.relationFromFields.map(columnOf)
          const target = models.find((m) => m.name === field.type)
          const optional = field.relationFromFields.some((f) => !model.fields.find((x) => x.name === f)?.isRequired)
          tableShape.foreignKeys[`${table}_${columns.join('_')}_fkey`] = {
            columns,
            references: tableOf.get(field.type) ?? field.type,
            referencedColumns: (field.relationToFields ?? []).map(
              (f) => target?.fields.find((x) => x.name === f)?.dbName ?? f,
            ),
            onDelete: action(field.relationOnDelete ?? (optional ? 'SetNull' : 'Restrict')),
            onUpdate: action(field.relationOnUpdate ?? 'Cascade'),
          }
        }
        continue
      }
      if (field.kind === 'unsupported') throw new Error(`Unsupported field ${model.name}.${field.name}`)
      tableShape.columns[field.dbName ?? field.name] = {
        type: columnType(field, enumDbName) + (field.isList ? '[]' : ''),
        notNull: field.isRequired,
        default: columnDefault(field, enumDbName),
      }
    }
    for (const index of indexes.filter((i) => i.model === model.name)) {
      const columns = index.fields.map((f) => columnOf(f.name))
      if (index.type === 'fulltext') throw new Error(`Fulltext index on ${model.name} is not mapped`)
      const suffix = index.type === 'id' ? 'pkey' : index.type === 'unique' ? 'key' : 'idx'
      const name = index.dbName ?? (index.type === 'id' ? `${table}_pkey` : `${table}_${columns.join('_')}_${suffix}`)
      tableShape.indexes[name] = { columns, unique: index.type !== 'normal', primary: index.type === 'id' }
    }
    shape.tables[table] = tableShape
  }
  return shape
}

function action(name: string): string {
  const mapped = REFERENTIAL_ACTIONS[name]
  if (!mapped) throw new Error(`Unmapped referential action ${name}`)
  return mapped
}

function quoteType(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`
}

function columnType(field: DmmfField, enums: Map<string, string>): string {
  if (field.kind === 'enum') return quoteType(enums.get(field.type) ?? field.type)
  if (field.nativeType) {
    const [name, args] = field.nativeType
    const map = NATIVE_TYPES[name]
    if (!map) throw new Error(`Unmapped native type @db.${name} on ${field.name}`)
    return map(args)
  }
  const type = SCALAR_TYPES[field.type]
  if (!type) throw new Error(`Unmapped scalar type ${field.type} on ${field.name}`)
  return type
}

function columnDefault(field: DmmfField, enums: Map<string, string>): string | null {
  const value = field.default
  if (value === undefined || value === null) return null
  if (typeof value === 'object' && 'name' in value) {
    const fn = value as { name: string; args: unknown[] }
    switch (fn.name) {
      case 'now':
        return 'CURRENT_TIMESTAMP'
      // Generated by Prisma Client, not by the database.
      case 'uuid':
      case 'cuid':
      case 'nanoid':
      case 'ulid':
        return null
      case 'dbgenerated':
        return typeof fn.args[0] === 'string' ? fn.args[0] : null
      default:
        throw new Error(`Unmapped default ${fn.name}() on ${field.name}`)
    }
  }
  if (Array.isArray(value) && value.length === 0) return `ARRAY[]::${columnType(field, enums)}[]`
  if (field.type === 'Json' && typeof value === 'string') return `'${value.replaceAll("'", "''")}'::jsonb`
  if (field.kind === 'enum') return `'${String(value)}'::${quoteType(enums.get(field.type) ?? field.type)}`
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'::text`
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  throw new Error(`Unmapped default ${JSON.stringify(value)} on ${field.name}`)
}

/** What a database holds in its current schema, leaving out Prisma Migrate's own table. */
export async function introspectShape(query: Query): Promise<SchemaShape> {
  const shape: SchemaShape = { enums: {}, tables: {} }
  const ownTables = `n.nspname = current_schema() AND t.relkind = 'r' AND t.relname <> '_prisma_migrations'`

  const enums = await query<{ name: string; labels: string }>(`
    SELECT ty.typname::text AS name, string_agg(e.enumlabel::text, ',' ORDER BY e.enumsortorder) AS labels
    FROM pg_type ty JOIN pg_enum e ON e.enumtypid = ty.oid JOIN pg_namespace n ON n.oid = ty.typnamespace
    WHERE n.nspname = current_schema() GROUP BY ty.typname`)
  for (const e of enums) shape.enums[e.name] = e.labels.split(',')

  const columns = await query<{ table: string; column: string; type: string; notNull: boolean; default: string | null }>(`
    SELECT t.relname::text AS "table", a.attname::text AS "column", format_type(a.atttypid, a.atttypmod) AS "type",
           a.attnotnull AS "notNull", pg_get_expr(d.adbin, d.adrelid) AS "default"
    FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE ${ownTables} AND a.attnum > 0 AND NOT a.attisdropped`)
  const tableOf = (name: string): TableShape => {
    shape.tables[name] ??= { columns: {}, indexes: {}, foreignKeys: {} }
    return shape.tables[name]
  }
  for (const c of columns) {
    tableOf(c.table).columns[c.column] = { type: c.type, notNull: c.notNull, default: c.default }
  }

  const indexes = await query<{ table: string; name: string; unique: boolean; primary: boolean; columns: string }>(`
    SELECT t.relname::text AS "table", i.relname::text AS "name", ix.indisunique AS "unique", ix.indisprimary AS "primary",
           (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord)
              FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS "columns"
    FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE ${ownTables}`)
  for (const i of indexes) {
    tableOf(i.table).indexes[i.name] = { columns: i.columns.split(','), unique: i.unique, primary: i.primary }
  }

  const keys = await query<{
    table: string
    name: string
    references: string
    columns: string
    referencedColumns: string
    onDelete: string
    onUpdate: string
  }>(`
    SELECT t.relname::text AS "table", con.conname::text AS "name", rt.relname::text AS "references",
           (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS "columns",
           (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) AS "referencedColumns",
           con.confdeltype::text AS "onDelete", con.confupdtype::text AS "onUpdate"
    FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class rt ON rt.oid = con.confrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE con.contype = 'f' AND ${ownTables}`)
  for (const k of keys) {
    tableOf(k.table).foreignKeys[k.name] = {
      columns: k.columns.split(','),
      references: k.references,
      referencedColumns: k.referencedColumns.split(','),
      onDelete: CATALOG_ACTIONS[k.onDelete] ?? k.onDelete,
      onUpdate: CATALOG_ACTIONS[k.onUpdate] ?? k.onUpdate,
    }
  }
  return shape
}
