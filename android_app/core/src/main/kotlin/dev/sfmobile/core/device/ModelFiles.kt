package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.TiledDecode

/**
 * Which file of each component a backend loads, after checking that it can load the bundle at
 * all: the components' tensors must be named as [ComponentIo] binds them, their format must be
 * the backend's ([Backend.bundleFormat]), and every input and output float32 or int32 (ONNX
 * Runtime's Java API has no uint16 tensors, LiteRT's Kotlin buffers take float and int;
 * quantized graphs quantize at their edge inside the graph).
 *
 * `ort-qnn` runs QNN bundles only (`sfmobile export --format qnn`, export/README.md): each
 * component's first file is its EPContext model (`<name>_ctx.onnx`), which names the context
 * binary beside it; the SoC check is [QnnSocs.checkDevice]. The other ONNX backends run format
 * onnx bundles and refuse a model file that is a QNN context.
 */
object ModelFiles {
    private val TENSOR_DTYPES = setOf("float32", "int32")
    private const val CONTEXT_SUFFIX = "_ctx.onnx"

    /**
     * Component name to the bundle-relative path [backend] loads: the text encoder, the UNet and
     * the one decoder the Pipeline will run for [tileDecoder] (null: auto; pass the Pipeline's
     * choice): `decoder_tile` when it decodes in tiles, else `decoder`
     * ([TiledDecode.decoderComponent]), so the other is neither loaded nor compiled.
     * BundleException names what stops it; InputException when [tileDecoder] is true and the
     * bundle has no tile decoder.
     */
    fun resolve(
        manifest: Manifest,
        backend: Backend,
        tileDecoder: Boolean? = null,
    ): Map<String, String> {
        ComponentIo.check(manifest, tileDecoder)
        return ComponentIo.inputs(manifest, tileDecoder).keys.associateWith { resolveComponent(manifest, it, backend) }
    }

    /** True when [path] is an ONNX Runtime EP context model (`*_ctx.onnx`). */
    fun isContextModel(path: String): Boolean = path.endsWith(CONTEXT_SUFFIX)

    private fun resolveComponent(
        manifest: Manifest,
        name: String,
        backend: Backend,
    ): String {
        val spec = manifest.component(name)
        val wanted = backend.bundleFormat
        if (spec.format != wanted) {
            val alternatives = Backend.forFormat(spec.format).joinToString(", ") { it.id }
            val how = if (backend == Backend.ORT_QNN) " (export --format qnn --soc <this phone's SoC>)" else ""
            throw BundleException(
                "component '$name' is ${spec.format} but backend ${backend.id} runs $wanted bundles$how; " +
                    "choose ${alternatives.ifEmpty { "another bundle" }}",
            )
        }
        for ((kind, tensors) in listOf("input" to spec.inputs, "output" to spec.outputs)) {
            tensors.firstOrNull { it.dtype !in TENSOR_DTYPES }?.let {
                throw BundleException(
                    "component '$name' $kind '${it.name}' is ${it.dtype}; the Android runtimes take float32 " +
                        "and int32 tensors only (export with float32/int32 graph inputs and outputs)",
                )
            }
        }
        val model = spec.files.first()
        if (backend == Backend.ORT_QNN && !isContextModel(model)) {
            throw BundleException(
                "component '$name' lists $model first; a qnn component's first file is its EPContext model (${name}_ctx.onnx)",
            )
        }
        if (backend != Backend.ORT_QNN && isContextModel(model)) {
            throw BundleException("component '$name' is a QNN context ($model) compiled for the Qualcomm HTP; only ort-qnn runs it")
        }
        return model
    }
}
