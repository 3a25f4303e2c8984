// The same file contract through the fallback layer, fuse-native on libfuse 2 (HERDS_FUSE=fuse-native).
import t from 'tap'
import { execContract } from './contract.js'
import { fuseFiles } from './files.js'
import { herdsUp, tempDir } from './harness.js'

const up = await herdsUp(t, 'studio', [], { HERDS_FUSE: 'fuse-native' })
t.match(up.proc.output(), /mount\s+\S+ \(fuse-native\)/, 'the mount says it uses the fallback')
execContract(t, fuseFiles(up.mountpoint), up.name, tempDir(t))
