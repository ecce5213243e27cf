package dev.sfmobile.core

/**
 * Tiled decoding (sfmobile/tiled_decode.py, step for step): the latent decoded as overlapping
 * square tiles by the bundle's `decoder_tile` component and blended into one image, so the
 * decoder's activations, a phone's largest allocation at 512x512, are a tile's, not the image's.
 *
 * Tiles of side t (latent pixels) are spread evenly over each axis, overlapping by at least the
 * overlap; the first and last touch the borders. Each tile's image is weighted by a linear
 * feather over the overlap at each edge inside the image, the weights normalised to sum to 1 at
 * every pixel. The arithmetic is Python's float32 in Python's order, so both give the same
 * floats (tests/golden/tiled_decode/). The result approximates the whole decode (docs/memory.md).
 */
object TiledDecode {
    /**
     * The latent side to decode tiles at, or null to decode whole (Python's tile_side for a
     * bundle). request: true tiles (the bundle needs a tile decoder, else [InputException]),
     * false never, null (auto) tiles when [decoderTile] is smaller than the latent's longer side.
     */
    fun tileSide(
        decoderTile: Int?,
        latentHeight: Int,
        latentWidth: Int,
        request: Boolean?,
    ): Int? {
        if (request == false) return null
        if (decoderTile == null) {
            if (request == true) throw InputException(NO_TILE_DECODER)
            return null
        }
        if (request == null && decoderTile >= maxOf(latentHeight, latentWidth)) return null
        return decoderTile
    }

    /**
     * The one decoder component the engines load and the [Pipeline] runs for [request] (null:
     * auto, as [tileSide]): [Manifest.DECODER_TILE] when it decodes in tiles, else `decoder`.
     * Decided before anything is loaded, so a tiling phone never loads or compiles the
     * full-size decoder (its buffers are the memory tiling saves; docs/memory.md).
     * InputException ([NO_TILE_DECODER]) when [request] is true and the bundle has no tile decoder.
     */
    fun decoderComponent(
        manifest: Manifest,
        request: Boolean?,
    ): String {
        val latent = manifest.latent
        val tile = tileSide(manifest.decoderTileSide, latent.height, latent.width, request)
        return if (tile == null) DECODER else Manifest.DECODER_TILE
    }

    /** The user's choice as `auto`, `on`, `off` (an intent extra, Python's --tile-decoder flags) to [tileSide]'s request. */
    fun parseChoice(value: String): Boolean? =
        when (value) {
            AUTO -> null
            ON -> true
            OFF -> false
            else -> throw InputException("tile decoder choice must be one of $CHOICES, got '$value'")
        }

    /** [parseChoice]'s inverse: null -> `auto`, true -> `on`, false -> `off`. */
    fun choiceName(request: Boolean?): String =
        when (request) {
            null -> AUTO
            true -> ON
            false -> OFF
        }

    const val DECODER = "decoder"
    const val AUTO = "auto"
    const val ON = "on"
    const val OFF = "off"
    val CHOICES = listOf(AUTO, ON, OFF)

    /** A quarter of the tile (10 latent pixels = 80 px for SD's 40-pixel tile), Python's default_overlap. */
    fun defaultOverlap(tile: Int): Int = tile / 4

    /**
     * Start offsets of tiles of side [tile] covering [0, size): as few as keep neighbours
     * overlapping by at least [overlap] (at most half a tile), evenly spread, the first at 0 and
     * the last at size - tile. Python's round() rounds ties to even, so this uses [Math.rint].
     */
    fun tileStarts(
        size: Int,
        tile: Int,
        overlap: Int,
    ): IntArray {
        if (tile !in 1..size) throw InputException("tile side $tile must be in 1..$size (the latent's side)")
        if (overlap !in 0..tile / 2) throw InputException("tile overlap $overlap must be in 0..${tile / 2} (half the tile)")
        if (tile == size) return intArrayOf(0)
        val count = maxOf(2, Math.ceil((size - overlap).toDouble() / (tile - overlap)).toInt())
        return IntArray(count) { Math.rint(it * (size - tile).toDouble() / (count - 1)).toInt() }
    }

    /**
     * Per tile, its weight at each of its [tile] positions along one axis: a linear ramp over
     * [ramp] positions at each edge inside the image (1 elsewhere), divided by the sum of every
     * tile's weight there, so the weights sum to 1 at every position.
     */
    fun axisWeights(
        starts: IntArray,
        tile: Int,
        size: Int,
        ramp: Int,
    ): List<FloatArray> {
        val rising = FloatArray(ramp) { (it + 0.5f) / maxOf(ramp, 1) }
        val raw =
            starts.map { start ->
                val weight = FloatArray(tile) { 1f }
                if (start > 0 && ramp > 0) rising.copyInto(weight)
                if (start + tile < size && ramp > 0) {
                    for (i in 0 until ramp) {
                        val at = tile - ramp + i
                        weight[at] = minOf(weight[at], rising[ramp - 1 - i])
                    }
                }
                weight
            }
        val total = FloatArray(size)
        for ((start, weight) in starts.zip(raw)) {
            for (i in 0 until tile) total[start + i] += weight[i]
        }
        return starts.zip(raw).map { (start, weight) -> FloatArray(tile) { weight[it] / total[start + it] } }
    }

    /**
     * latents [1, c, h, w] -> image [1, 3, factor h, factor w]: each [1, c, tile, tile] piece
     * decoded by [decodeTile] (-> [1, 3, factor tile, factor tile], else [EngineException]) and
     * feathered, pixel by pixel, into its neighbours.
     */
    fun decode(
        latents: FloatTensor,
        decodeTile: (FloatTensor) -> FloatTensor,
        tile: Int,
        overlap: Int,
        factor: Int,
    ): FloatTensor {
        if (latents.shape.size != 4 || latents.shape[0] != 1) {
            throw InputException("latents must be [1, c, h, w], got ${latents.shape.contentToString()}")
        }
        val (_, channels, height, width) = latents.shape
        val rows = tileStarts(height, tile, overlap)
        val cols = tileStarts(width, tile, overlap)
        val side = tile * factor
        val ramp = overlap * factor
        val rowWeights = axisWeights(IntArray(rows.size) { rows[it] * factor }, side, height * factor, ramp)
        val colWeights = axisWeights(IntArray(cols.size) { cols[it] * factor }, side, width * factor, ramp)
        val imageHeight = height * factor
        val imageWidth = width * factor
        val image = FloatArray(3 * imageHeight * imageWidth)
        for ((y, wy) in rows.zip(rowWeights)) {
            for ((x, wx) in cols.zip(colWeights)) {
                val part = decodeTile(crop(latents.data, channels, height, width, y, x, tile))
                if (!part.shape.contentEquals(intArrayOf(1, 3, side, side))) {
                    throw EngineException(
                        "decoder_tile returned shape ${part.shape.contentToString()} for a ${tile}x$tile latent tile, " +
                            "expected [1, 3, $side, $side]",
                    )
                }
                val top = y * factor
                val left = x * factor
                for (c in 0 until 3) {
                    for (i in 0 until side) {
                        val from = (c * side + i) * side
                        val to = (c * imageHeight + top + i) * imageWidth + left
                        for (j in 0 until side) image[to + j] += part.data[from + j] * (wy[i] * wx[j])
                    }
                }
            }
        }
        return FloatTensor(intArrayOf(1, 3, imageHeight, imageWidth), image)
    }

    /** The [1, c, tile, tile] piece of [1, c, h, w] latents whose top-left corner is (y, x). */
    private fun crop(
        data: FloatArray,
        channels: Int,
        height: Int,
        width: Int,
        y: Int,
        x: Int,
        tile: Int,
    ): FloatTensor {
        val piece = FloatArray(channels * tile * tile)
        for (c in 0 until channels) {
            for (i in 0 until tile) {
                System.arraycopy(data, (c * height + y + i) * width + x, piece, (c * tile + i) * tile, tile)
            }
        }
        return FloatTensor(intArrayOf(1, channels, tile, tile), piece)
    }

    /** Why tiling was asked for and cannot run (Python's tile_side refusal, in the app's words). */
    const val NO_TILE_DECODER =
        "this bundle has no tile decoder (the optional `decoder_tile` component), which tiled decoding needs; " +
            "export it again with --decoder-tile PIXELS (e.g. 320 for 512x512)"
}
