package dev.sfmobile.core

/**
 * The starting picture of image-to-image (sfmobile/init_image.py), at the bundle's image size:
 * the app resizes or crops before (the core never chooses a picture's content).
 */
sealed class InitImage {
    /** 8-bit RGB, row-major, `height * width * 3` bytes (read as unsigned), as [Generation.rgb]. */
    class Rgb(
        val width: Int,
        val height: Int,
        val rgb: ByteArray,
    ) : InitImage()

    /** The encoder's input itself: float32 [1, 3, H, W] in [-1, 1]. */
    class Tensor(
        val tensor: FloatTensor,
    ) : InitImage()

    /** The encoder's input [1, 3, height, width], or InputException naming what does not fit. */
    fun toTensor(
        height: Int,
        width: Int,
    ): FloatTensor {
        val tensor =
            when (this) {
                is Rgb -> {
                    if (this.width != width || this.height != height) {
                        throw InputException(
                            "init image is ${this.width}x${this.height} (width x height), the bundle generates " +
                                "${width}x$height: resize or crop it to that size first",
                        )
                    }
                    fromRgb(width, height, rgb)
                }

                is Tensor -> {
                    tensor
                }
            }
        val expected = intArrayOf(1, 3, height, width)
        if (!tensor.shape.contentEquals(expected)) {
            throw InputException("init image must be [1, 3, $height, $width], got ${tensor.shape.contentToString()}")
        }
        if (tensor.data.any { !it.isFinite() }) throw InputException("init image holds NaN or infinite values")
        return tensor
    }

    companion object {
        /** RGB bytes -> [1, 3, H, W] with 2 * pixel / 255 - 1 in float32, in Python's order (image_array). */
        fun fromRgb(
            width: Int,
            height: Int,
            rgb: ByteArray,
        ): FloatTensor {
            val bytes = 3L * width * height
            if (width < 1 || height < 1 || rgb.size.toLong() != bytes) {
                throw InputException("init image of ${width}x$height needs $bytes RGB bytes, got ${rgb.size}")
            }
            val plane = width * height
            val data = FloatArray(plane * 3)
            for (c in 0 until 3) {
                for (p in 0 until plane) {
                    val pixel = (rgb[p * 3 + c].toInt() and 0xff).toFloat()
                    data[c * plane + p] = pixel / 255f * 2f - 1f
                }
            }
            return FloatTensor(intArrayOf(1, 3, height, width), data)
        }
    }
}
