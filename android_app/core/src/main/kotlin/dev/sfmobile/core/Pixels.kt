package dev.sfmobile.core

/** The decoder's output as pixels, rounded exactly as sfmobile.pipeline.to_image rounds them. */
object Pixels {
    /**
     * [1, 3, H, W] in [-1, 1] -> H*W*3 bytes of RGB: clamp(x / 2 + 0.5, 0, 1) * 255 in float32,
     * then round half to even (numpy's round), as diffusers does.
     */
    fun toRgb(decoded: FloatTensor): ByteArray {
        val (batch, channels, height, width) = decoded.shape.also { require(it.size == 4) { "decoded image must be [1, 3, H, W]" } }
        require(batch == 1 && channels == 3) { "decoded image must be [1, 3, H, W], got ${decoded.shape.contentToString()}" }
        val plane = height * width
        val rgb = ByteArray(plane * 3)
        for (c in 0 until 3) {
            for (p in 0 until plane) {
                val value = (decoded.data[c * plane + p] / 2f + 0.5f).coerceIn(0f, 1f) * 255f
                rgb[p * 3 + c] = Math.rint(value.toDouble()).toInt().toByte()
            }
        }
        return rgb
    }
}
