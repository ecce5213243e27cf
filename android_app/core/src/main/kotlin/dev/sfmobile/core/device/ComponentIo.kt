package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.FloatTensor
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.TiledDecode

/**
 * The tensor names of export/README.md's table, by which the Android engines bind inputs (never
 * by position: `timestep` and `guidance` are both float32 [B]). [check] refuses a manifest whose
 * components do not have exactly these inputs, before any runtime is loaded.
 */
object ComponentIo {
    const val INPUT_IDS = "input_ids"
    const val SAMPLE = "sample"
    const val TIMESTEP = "timestep"
    const val TEXT_EMBEDDINGS = "text_embeddings"
    const val GUIDANCE = "guidance"
    const val LATENTS = "latents"

    /**
     * Input names per component the engines load ([ModelFiles.resolve]) for the tile-decoder
     * choice [tileDecoder] (null: auto; the Pipeline's): the text encoder, the UNet (its inputs
     * include [GUIDANCE] when the manifest's `guidance.input` is true) and one decoder,
     * `decoder` or `decoder_tile` as [TiledDecode.decoderComponent] decides, never both.
     * InputException when [tileDecoder] is true and the bundle has no tile decoder.
     */
    fun inputs(
        manifest: Manifest,
        tileDecoder: Boolean? = null,
    ): Map<String, Set<String>> =
        buildMap {
            put("text_encoder", setOf(INPUT_IDS))
            put("unet", setOfNotNull(SAMPLE, TIMESTEP, TEXT_EMBEDDINGS, GUIDANCE.takeIf { manifest.guidance.input }))
            put(TiledDecode.decoderComponent(manifest, tileDecoder), setOf(LATENTS))
        }

    /** BundleException naming the component and the names it has when they differ from [inputs]. */
    fun check(
        manifest: Manifest,
        tileDecoder: Boolean? = null,
    ) {
        for ((component, expected) in inputs(manifest, tileDecoder)) {
            val spec = manifest.component(component)
            val actual = spec.inputs.map { it.name }.toSet()
            if (actual != expected) {
                throw BundleException(
                    "component '$component' has inputs ${actual.sorted()}, the Android engines need ${expected.sorted()}",
                )
            }
            if (spec.outputs.size != 1) {
                throw BundleException("component '$component' has ${spec.outputs.size} outputs, the Android engines read exactly one")
            }
        }
    }

    /**
     * The UNet's inputs by name at its static [batch]: [latents] and [text] rows repeated or cut
     * to fill it ([fitRows]), the timestep and the guidance scale (when given) broadcast to [batch].
     */
    fun unetInputs(
        latents: FloatTensor,
        timestep: Float,
        text: FloatTensor,
        guidance: Float?,
        batch: Int,
    ): Map<String, FloatTensor> =
        buildMap {
            put(SAMPLE, fitRows(latents, batch))
            put(TIMESTEP, FloatTensor(intArrayOf(batch), FloatArray(batch) { timestep }))
            put(TEXT_EMBEDDINGS, fitRows(text, batch))
            if (guidance != null) put(GUIDANCE, FloatTensor(intArrayOf(batch), FloatArray(batch) { guidance }))
        }

    /** The UNet's static batch (its `sample` input's first dimension). */
    fun unetBatch(manifest: Manifest): Int =
        manifest
            .component("unet")
            .input(SAMPLE)
            ?.shape
            ?.firstOrNull()
            ?: throw BundleException("component 'unet' has no '$SAMPLE' input")
}

/**
 * [tensor] with exactly [rows] rows (its first dimension): rows past the end repeat the last one,
 * extra rows are dropped. Engines whose model has a static batch use it on the way in (the
 * pipeline asks for one row from a batch-2 UNet when guidance is off) and on the way out.
 */
fun fitRows(
    tensor: FloatTensor,
    rows: Int,
): FloatTensor {
    val have = tensor.shape[0]
    if (have == rows) return tensor
    val rowSize = tensor.data.size / have
    val data = FloatArray(rows * rowSize)
    for (r in 0 until rows) {
        System.arraycopy(tensor.data, minOf(r, have - 1) * rowSize, data, r * rowSize, rowSize)
    }
    return FloatTensor(tensor.shape.copyOf().also { it[0] = rows }, data)
}
