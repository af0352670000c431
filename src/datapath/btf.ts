/**
 * Just enough of BTF (the kernel's BPF Type Format, Documentation/bpf/btf.rst) to compare map
 * layouts: the shape of a key or value type (its size, and for a struct each member's name,
 * offset and size), and where a global variable sits in its data section.
 *
 * The same bytes come from two places: the compiled object (libbpf's copy after open) and the
 * kernel (the BTF a pinned map was created with, by its btf_id). A map's BTF is what the migration
 * compares, because sizes alone cannot tell a pad byte from a flag (struct ws_link, layout 1).
 */

const BTF_MAGIC = 0xeb9f;

/** BTF kinds (linux/btf.h). */
const Kind = {
  int: 1, ptr: 2, array: 3, struct: 4, union: 5, enum: 6, fwd: 7, typedef: 8, volatile: 9, const: 10, restrict: 11,
  func: 12, funcProto: 13, var: 14, datasec: 15, float: 16, declTag: 17, typeTag: 18, enum64: 19,
} as const;

interface BtfType {
  kind: number;
  name: string;
  vlen: number;
  kindFlag: boolean;
  /** size (int, struct, union, enum, datasec, float) or referenced type id (ptr, typedef, …) */
  sizeOrType: number;
  /** Offset of the kind-specific data that follows the common header. */
  extra: number;
}

/** One member of a struct or union, in bytes. Bitfields do not occur in our layouts. */
export interface Member {
  name: string;
  offset: number;
  size: number;
}

/** A key or value type: its size and, when it is a struct or union, its members. */
export interface TypeShape {
  /** The type's name once typedefs, const and volatile are peeled (`ws_flow_val`, `__u32` → ``). */
  name: string;
  size: number;
  members: Member[];
}

export class Btf {
  private readonly types: (BtfType | null)[] = [null]; // type id 0 is void
  private readonly strOff: number;

  constructor(private readonly raw: Buffer) {
    if (raw.length < 24 || raw.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not BTF (bad magic)');
    const hdrLen = raw.readUInt32LE(4);
    const typeOff = hdrLen + raw.readUInt32LE(8);
    const typeLen = raw.readUInt32LE(12);
    this.strOff = hdrLen + raw.readUInt32LE(16);
    let at = typeOff;
    const end = typeOff + typeLen;
    while (at < end) {
      const info = raw.readUInt32LE(at + 4);
      const t: BtfType = {
        kind: (info >>> 24) & 0x1f,
        name: this.str(raw.readUInt32LE(at)),
        vlen: info & 0xffff,
        kindFlag: info >>> 31 === 1,
        sizeOrType: raw.readUInt32LE(at + 8),
        extra: at + 12,
      };
      this.types.push(t);
      at = t.extra + extraSize(t);
    }
  }

  /** The shape of type `id`, through typedefs and qualifiers. */
  shape(id: number): TypeShape {
    const t = this.resolve(id);
    if (!t) throw new Error(`BTF type ${id}: void`);
    const size = this.sizeOf(id);
    if (t.kind !== Kind.struct && t.kind !== Kind.union) return { name: '', size, members: [] };
    const members: Member[] = [];
    for (let i = 0; i < t.vlen; i++) {
      const m = t.extra + i * 12;
      const rawOffset = this.raw.readUInt32LE(m + 8);
      const bitOffset = t.kindFlag ? rawOffset & 0xffffff : rawOffset;
      const bitfield = t.kindFlag ? rawOffset >>> 24 : 0;
      if (bitfield || bitOffset % 8) throw new Error(`BTF struct ${t.name}: bitfields are not supported`);
      members.push({ name: this.str(this.raw.readUInt32LE(m)), offset: bitOffset / 8, size: this.sizeOf(this.raw.readUInt32LE(m + 4)) });
    }
    return { name: t.name, size, members };
  }

  /**
   * Where the global variable `name` sits: its data section (`.rodata`, `.data`) and its byte
   * offset and size there. Null when the object has no such variable.
   */
  variable(name: string): { section: string; offset: number; size: number } | null {
    for (const t of this.types) {
      if (t?.kind !== Kind.datasec) continue;
      for (let i = 0; i < t.vlen; i++) {
        const v = t.extra + i * 12;
        const varType = this.types[this.raw.readUInt32LE(v)];
        if (varType?.kind === Kind.var && varType.name === name) {
          return { section: t.name, offset: this.raw.readUInt32LE(v + 4), size: this.raw.readUInt32LE(v + 8) };
        }
      }
    }
    return null;
  }

  private resolve(id: number): BtfType | null {
    let t = this.types[id] ?? null;
    for (let hops = 0; t && isAlias(t.kind); hops++) {
      if (hops > 32) throw new Error(`BTF type ${id}: a loop of typedefs`);
      t = this.types[t.sizeOrType] ?? null;
    }
    return t;
  }

  private sizeOf(id: number): number {
    const t = this.resolve(id);
    if (!t) return 0;
    switch (t.kind) {
      case Kind.ptr:
        return 8;
      case Kind.array: {
        const elem = this.raw.readUInt32LE(t.extra);
        return this.sizeOf(elem) * this.raw.readUInt32LE(t.extra + 8);
      }
      case Kind.int:
      case Kind.struct:
      case Kind.union:
      case Kind.enum:
      case Kind.enum64:
      case Kind.float:
      case Kind.datasec:
        return t.sizeOrType;
      default:
        throw new Error(`BTF type ${id} (${t.name || 'anonymous'}, kind ${t.kind}) has no size`);
    }
  }

  private str(off: number): string {
    const start = this.strOff + off;
    const end = this.raw.indexOf(0, start);
    return this.raw.toString('latin1', start, end < 0 ? this.raw.length : end);
  }
}

function isAlias(kind: number): boolean {
  return kind === Kind.typedef || kind === Kind.volatile || kind === Kind.const || kind === Kind.restrict || kind === Kind.typeTag;
}

/** Bytes of kind-specific data after a type's 12-byte header. */
function extraSize(t: BtfType): number {
  switch (t.kind) {
    case Kind.int:
      return 4;
    case Kind.array:
      return 12;
    case Kind.struct:
    case Kind.union:
      return 12 * t.vlen;
    case Kind.enum:
      return 8 * t.vlen;
    case Kind.funcProto:
      return 8 * t.vlen;
    case Kind.var:
      return 4;
    case Kind.datasec:
      return 12 * t.vlen;
    case Kind.declTag:
      return 4;
    case Kind.enum64:
      return 12 * t.vlen;
    default:
      return 0;
  }
}

/** Same size and the same members (names, offsets, sizes) in the same order. */
export function sameShape(a: TypeShape, b: TypeShape): boolean {
  return (
    a.size === b.size &&
    a.members.length === b.members.length &&
    a.members.every((m, i) => m.name === b.members[i]!.name && m.offset === b.members[i]!.offset && m.size === b.members[i]!.size)
  );
}

/** `ws_link { ifindex@0:4 up@4:1 … } (28 bytes)`, for errors and logs. */
export function describeShape(s: TypeShape): string {
  if (s.members.length === 0) return `${s.size} bytes`;
  return `${s.name || 'struct'} { ${s.members.map((m) => `${m.name}@${m.offset}:${m.size}`).join(' ')} } (${s.size} bytes)`;
}
