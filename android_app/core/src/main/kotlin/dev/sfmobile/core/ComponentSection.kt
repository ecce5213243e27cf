package dev.sfmobile.core

/** (De)quantization of an int8/uint8 tensor: real = scale * (q - zeroPoint). */
data class Quantization(
    val scale: Double,
    val zeroPoint: Long,
)

/** One model input or output: name, static shape, dtype (float32, float16, int32, int64, int8, uint8). */
data class TensorSpec(
    val name: String,
    val shape: List<Int>,
    val dtype: String,
    val quantization: Quantization? = null,
)

/** One exported model: its files (model file first, then external data) and its tensors. */
data class ComponentSpec(
    val format: String,
    val precision: String,
    val files: List<String>,
    val inputs: List<TensorSpec>,
    val outputs: List<TensorSpec>,
) {
    fun input(name: String): TensorSpec? = inputs.firstOrNull { it.name == name }
}

/** Reading one `components` entry and its tensors, as export/manifest.schema.json's `$defs.component` and `$defs.tensor` say. */
internal object ComponentSection {
    val FORMATS = listOf("onnx", "tflite", QnnSection.FORMAT)
    private val DTYPES = listOf("float32", "float16", "int32", "int64", "int8", "uint8")

    fun read(c: JsonFields): ComponentSpec {
        c.keys(listOf("format", "precision", "files", "inputs", "outputs"))
        val files = c.array("files").mapIndexed { i, f -> c.relativePath(c.stringOf(f, c.at("files/$i")), "files/$i") }
        if (files.isEmpty()) c.refuse("files", "[] should be non-empty")
        val repeated = files.toSet().size != files.size
        if (repeated) c.refuse("files", "${files.joinToString(", ", "[", "]") { "'$it'" }} has non-unique elements")

        fun tensors(name: String): List<TensorSpec> {
            val array = c.array(name)
            if (array.isEmpty) c.refuse(name, "[] should be non-empty")
            return (0 until array.size()).map { tensor(c.objectAt(name, it)) }
        }
        return ComponentSpec(
            format = c.enum("format", FORMATS),
            precision = c.enum("precision", listOf("fp32", "fp16", "int8-dynamic", "int8-static") + QnnSection.PRECISIONS),
            files = files,
            inputs = tensors("inputs"),
            outputs = tensors("outputs"),
        )
    }

    private fun tensor(t: JsonFields): TensorSpec {
        t.keys(listOf("name", "shape", "dtype"), listOf("name", "shape", "dtype", "quantization"))
        val shape = t.array("shape").mapIndexed { i, d -> t.integerOf(d, t.at("shape/$i"), 1).toInt() }
        if (shape.isEmpty()) t.refuse("shape", "[] should be non-empty")
        val quantization =
            if (t.has("quantization")) {
                t.obj("quantization").keys(listOf("scale", "zero_point")).let { q ->
                    Quantization(q.number("scale", exclusiveMinimum = 0.0), q.integer("zero_point"))
                }
            } else {
                null
            }
        return TensorSpec(t.string("name"), shape, t.enum("dtype", DTYPES), quantization)
    }
}

/** A path field that must follow closure rule 1 ([Manifest.isRelativePath]), refused naming [name] otherwise. */
internal fun JsonFields.relativePath(
    value: String,
    name: String,
): String {
    if (Manifest.isRelativePath(value)) return value
    refuse(name, "'$value' is not a relative, normalised path inside the bundle (closure rule 1, export/README.md)")
}
