package dev.sfmobile.core

/**
 * The calls every runtime (ONNX Runtime, LiteRT, a test's replay) implements, on float32
 * and int32 tensors, so the [Pipeline] never knows which runtime runs the components
 * (sfmobile/backends/base.py is the Python side). Shapes, with D the text width and h x w the
 * latent size (image size / 8):
 *
 * - encodeText: token ids [B, 77] -> text embeddings [B, 77, D]
 * - predict: latents [B, 4, h, w], the raw timestep, text [B, 77, D], and for a UNet that takes
 *   the guidance scale as an input (manifest `guidance.input`) that scale, else null
 *   -> model output [B, 4, h, w] (epsilon or v, per the manifest's scheduler)
 * - decode: latents [1, 4, h, w], already divided by the scaling factor -> image [1, 3, 8h, 8w]
 *   in about [-1, 1]
 * - encodeImage (image-to-image only): image [1, 3, 8h, 8w] in [-1, 1] -> the VAE posterior's
 *   mean [1, 4, h, w], unscaled (the bundle's optional `encoder` component). The default throws
 *   [BundleException], so an engine written for text-to-image needs no change.
 * - decodeTile (tiled decoding only): one latent tile [1, 4, t, t], already divided by the
 *   scaling factor -> image tile [1, 3, 8t, 8t], t the manifest's [Manifest.decoderTileSide] (the
 *   bundle's optional `decoder_tile` component; [TiledDecode]). The default throws [BundleException].
 *
 * An engine whose model has a static batch pads or slices rows as it needs; the pipeline asks
 * for the batch the manifest's `guidance.cfg_batch` names.
 */
interface Engine : AutoCloseable {
    fun encodeText(tokenIds: IntTensor): FloatTensor

    fun predict(
        latents: FloatTensor,
        timestep: Float,
        text: FloatTensor,
        guidance: Float?,
    ): FloatTensor

    fun decode(latents: FloatTensor): FloatTensor

    fun encodeImage(image: FloatTensor): FloatTensor = throw BundleException(NO_ENCODER)

    fun decodeTile(latents: FloatTensor): FloatTensor = throw BundleException(TiledDecode.NO_TILE_DECODER)

    companion object {
        /** Why image-to-image cannot run: the message of Python's no_encoder (backends/bundle_backend.py). */
        const val NO_ENCODER =
            "this bundle has no image encoder (the optional `encoder` component), which image-to-image needs; " +
                "export it again with --with-encoder"
    }
}
