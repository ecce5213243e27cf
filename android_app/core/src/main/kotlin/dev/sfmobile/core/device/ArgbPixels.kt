package dev.sfmobile.core.device

import dev.sfmobile.core.InputException

/**
 * Packs 8-bit RGB pixels (`height x width x 3`, row-major, as a generation returns them) into
 * opaque ARGB_8888 ints (`0xFFRRGGBB`), the layout `android.graphics.Bitmap.createBitmap(int[], ...)`
 * takes.
 */
fun rgbToArgb(
    rgb: ByteArray,
    width: Int,
    height: Int,
): IntArray {
    if (width < 1 || height < 1 || rgb.size.toLong() != width.toLong() * height * 3) {
        throw InputException("RGB image ${width}x$height needs ${width.toLong() * height * 3} bytes, got ${rgb.size}")
    }
    return IntArray(width * height) { i ->
        val r = rgb[3 * i].toInt() and 0xFF
        val g = rgb[3 * i + 1].toInt() and 0xFF
        val b = rgb[3 * i + 2].toInt() and 0xFF
        (0xFF shl 24) or (r shl 16) or (g shl 8) or b
    }
}
