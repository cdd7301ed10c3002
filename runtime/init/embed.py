#!/usr/bin/env python3
"""Writes an assembler file that embeds a binary as a symbol: embed.py INPUT OUTPUT SYMBOL.

The runtime links the generated object and copies the bytes between SYMBOL and SYMBOL_end into a sealed memfd.
"""
import os
import sys


def main() -> int:
    src, out, sym = sys.argv[1], sys.argv[2], sys.argv[3]
    path = os.path.abspath(src).replace('\\', '\\\\').replace('"', '\\"')
    with open(out, 'w', encoding='utf-8') as f:
        f.write(f'''    .section .rodata
    .balign 64
    .globl {sym}
    .type {sym}, @object
{sym}:
    .incbin "{path}"
    .globl {sym}_end
{sym}_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
''')
    return 0


if __name__ == '__main__':
    sys.exit(main())
