#!/usr/bin/env python3
"""Draws the images of Supervisor's face (our own art, not Supervisor's):
icon.png (32x32) and logo.png (the header). Run it here to remake them."""
import struct, zlib, os

def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(v for p in row for v in p) for row in px)
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)

GREEN = (46, 125, 50, 255)
DARK = (38, 50, 56, 255)
CLEAR = (0, 0, 0, 0)
WHITE = (255, 255, 255, 255)

# 5x7 glyphs
FONT = {
    "t": ["..#..", "..#..", "#####", "..#..", "..#..", "..#..", "...##"],
    "e": [".....", ".###.", "#...#", "#####", "#....", "#...#", ".###."],
    "n": [".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "#...#"],
    "d": ["....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"],
}

def icon():
    w = h = 32
    px = [[CLEAR] * w for _ in range(h)]
    for y in range(h):
        for x in range(w):
            # a rounded square
            dx = max(0, max(4 - x, x - 27)); dy = max(0, max(4 - y, y - 27))
            if dx * dx + dy * dy <= 16:
                px[y][x] = GREEN
    g = FONT["t"]
    for gy, row in enumerate(g):
        for gx, c in enumerate(row):
            if c == "#":
                for yy in range(3):
                    for xx in range(3):
                        px[6 + gy * 3 + yy][9 + gx * 3 + xx] = WHITE
    return w, h, px

def logo():
    s = 4
    word = "tend"
    h = 7 * s + 8
    mark = 7 * s + 8
    w = mark + 8 + len(word) * 6 * s
    px = [[CLEAR] * w for _ in range(h)]
    # the mark: three bars rising, like a process kept up
    for i, bh in enumerate([12, 20, 28]):
        for y in range(h - 4 - bh, h - 4):
            for x in range(4 + i * 10, 4 + i * 10 + 7):
                px[y][x] = GREEN
    for i, ch in enumerate(word):
        for gy, row in enumerate(FONT[ch]):
            for gx, c in enumerate(row):
                if c == "#":
                    for yy in range(s):
                        for xx in range(s):
                            px[4 + gy * s + yy][mark + 8 + i * 6 * s + gx * s + xx] = DARK
    return w, h, px

here = os.path.dirname(os.path.abspath(__file__))
png(os.path.join(here, "icon.png"), *icon())
png(os.path.join(here, "logo.png"), *logo())
