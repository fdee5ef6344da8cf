"""PNG and baseline JPEG files written byte by byte (standard library only),
so that the hostile corpus can hold both valid images and images whose
headers lie about their size."""

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# PNG colour types and the channels each pixel has.
PNG_CHANNELS = {0: 1, 2: 3, 6: 4}  # grayscale, RGB, RGBA


def png(width: int, height: int, pixel, colour_type: int = 2) -> bytes:
    """A valid 8-bit PNG; `pixel(x, y)` gives the channel values (one for
    grayscale, three for RGB, four for RGBA)."""
    channels = PNG_CHANNELS[colour_type]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            values = pixel(x, y)
            assert len(values) == channels
            rows.extend(values)
    return png_from_parts(width, height, colour_type, zlib.compress(bytes(rows), 9))


def png_from_parts(width: int, height: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG with this header and this (possibly lying) compressed data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_with_bad_crc(data: bytes) -> bytes:
    """`data` (a PNG) with the CRC of its IDAT chunk flipped."""
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4 : at])[0]
    crc_at = at + 4 + length
    bad = bytearray(data)
    bad[crc_at] ^= 0xFF
    return bytes(bad)


# The standard luminance DC Huffman table (ITU T.81, K.3): categories 0-11.
_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
_DC_VALUES = list(range(12))
# Every block is flat, so the only AC symbol ever written is end-of-block.
_AC_BITS = [1] + [0] * 15
_AC_VALUES = [0x00]


def _huffman_codes(bits, values):
    """Canonical Huffman codes (T.81, C.2): symbol -> (code, length)."""
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class _BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def write(self, value: int, length: int):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0x00)  # byte stuffing
                self.acc, self.n = 0, 0

    def finish(self) -> bytes:
        while self.n:
            self.write(1, 1)  # pad with ones
        return bytes(self.out)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg(width: int, height: int, pixel, grayscale: bool = False, claim=None) -> bytes:
    """A valid baseline JPEG of flat 8x8 blocks (each the colour of `pixel`
    at the block's top-left corner; sides multiples of 8). `claim=(w, h)`
    writes those dimensions into the SOF0 header instead, with the entropy
    data still only for `width` x `height`: an image whose header lies."""
    assert width % 8 == 0 and height % 8 == 0
    components = 1 if grayscale else 3
    claimed_w, claimed_h = claim or (width, height)
    out = bytearray(b"\xff\xd8")
    out += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += _segment(0xDB, b"\x00" + b"\x01" * 64)  # every quantiser 1
    sof = struct.pack(">BHHB", 8, claimed_h, claimed_w, components)
    for c in range(components):
        sof += struct.pack(">BBB", c + 1, 0x11, 0)
    out += _segment(0xC0, sof)
    dht = bytes([0x00] + _DC_BITS + _DC_VALUES) + bytes([0x10] + _AC_BITS + _AC_VALUES)
    out += _segment(0xC4, dht)
    sos = struct.pack(">B", components)
    for c in range(components):
        sos += struct.pack(">BB", c + 1, 0x00)
    out += _segment(0xDA, sos + b"\x00\x3f\x00")
    dc, ac = _huffman_codes(_DC_BITS, _DC_VALUES), _huffman_codes(_AC_BITS, _AC_VALUES)
    bits = _BitWriter()
    previous = [0] * components
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            values = _ycbcr(pixel(bx, by), grayscale)
            for c in range(components):
                # A flat block's DC coefficient is 8 x (level - 128).
                coefficient = 8 * (values[c] - 128)
                diff = coefficient - previous[c]
                previous[c] = coefficient
                category = abs(diff).bit_length()
                bits.write(*dc[category])
                if category:
                    bits.write(diff if diff > 0 else diff + (1 << category) - 1, category)
                bits.write(*ac[0x00])
    out += bits.finish()
    out += b"\xff\xd9"
    return bytes(out)


def _ycbcr(rgb, grayscale: bool):
    if grayscale:
        return [rgb[0]]
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return [max(0, min(255, round(v))) for v in (y, cb, cr)]
