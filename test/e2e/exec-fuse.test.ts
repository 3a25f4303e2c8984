// The file contract through a real FUSE mount made by `herds up`, through the libfuse3 layer.
import t from 'tap'
import { execContract } from './contract.js'
import { fuseFiles } from './files.js'
import { herdsUp, tempDir } from './harness.js'

const up = await herdsUp(t, 'studio', [], { HERDS_FUSE: 'libfuse3' })
t.match(up.proc.output(), /mount\s+\S+ \(libfuse3\)/, 'the mount says it uses the libfuse3 layer')
execContract(t, fuseFiles(up.mountpoint), up.name, tempDir(t))
