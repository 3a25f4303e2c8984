// fuse-native ships no types; this is the part Herds uses.
declare module 'fuse-native' {
  type Cb = (code: number, ...values: unknown[]) => void
  class Fuse {
    constructor (mnt: string, ops: Record<string, (...args: any[]) => void>, opts?: Record<string, unknown>)
    mnt: string
    opts: Record<string, unknown>
    mount (cb: (err: Error | null) => void): void
    unmount (cb: (err: Error | null) => void): void
    _fuseOptions (): string
    static unmount (mnt: string, cb: (err: Error | null) => void): void
  }
  export = Fuse
  export type { Cb }
}
