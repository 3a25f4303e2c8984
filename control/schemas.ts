/**
 * The JSON each control file takes: the zod schemas that validate the writes,
 * and from which the catalog's JSON Schemas are made (one source of truth).
 */
import { PortRequestSchema } from '../host/ports.js'
import { z } from 'zod'
import { TokenRequestSchema } from '../host/tokens.js'
import { SandboxConfigSchema } from '../nodes/sandboxes.js'
import { SafeName } from '../tree/wire.js'

const Place = {
  node: SafeName.describe('the node\'s name, as listed in /nodes'),
  name: SafeName.describe('the new name'),
}

export const SandboxCreateSchema = z.object({
  ...Place,
  config: SandboxConfigSchema.optional().describe('the sandbox\'s config.json; defaults where absent'),
}).strict()

export const VolumeCreateSchema = z.object(Place).strict()

/** A sandbox or volume to remove. */
export const RemoveSchema = z.object(Place).strict()

/** What /.herds/catalog/schemas/ holds: its name → the file it describes and its schema. */
export const SCHEMAS: Record<string, { file: string, schema: z.ZodType }> = {
  'tokens-create': { file: '/.herds/control/tokens/create', schema: TokenRequestSchema },
  'sandboxes-create': { file: '/.herds/control/sandboxes/create', schema: SandboxCreateSchema },
  'sandboxes-remove': { file: '/.herds/control/sandboxes/remove', schema: RemoveSchema },
  'volumes-create': { file: '/.herds/control/volumes/create', schema: VolumeCreateSchema },
  'volumes-remove': { file: '/.herds/control/volumes/remove', schema: RemoveSchema },
  'sandbox-config': { file: '/nodes/<node>/sandboxes/<name>/config.json', schema: SandboxConfigSchema },
  'ports-create': { file: '/.herds/control/ports/create', schema: PortRequestSchema },
}

/** The JSON Schema of one entry, for what a writer may send (defaults optional). */
export function jsonSchema (name: string): unknown {
  const entry = SCHEMAS[name]
  return {
    ...z.toJSONSchema(entry.schema, { io: 'input', unrepresentable: 'any' }),
    title: name,
    description: `What ${entry.file} takes.`,
  }
}
