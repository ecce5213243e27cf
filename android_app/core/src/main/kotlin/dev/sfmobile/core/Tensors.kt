package dev.sfmobile.core

/** A float32 tensor: `data` in row-major (C) order, `shape.product() == data.size`. */
class FloatTensor(
    val shape: IntArray,
    val data: FloatArray,
) {
    init {
        checkShape(shape, data.size)
    }

    override fun toString(): String = "FloatTensor${shape.contentToString()}"
}

/** An int32 tensor (token ids): `data` in row-major (C) order. */
class IntTensor(
    val shape: IntArray,
    val data: IntArray,
) {
    init {
        checkShape(shape, data.size)
    }

    override fun toString(): String = "IntTensor${shape.contentToString()}"
}

/** Element count of a shape whose dimensions are all >= 1, or InputException. */
fun elementCount(shape: IntArray): Int {
    if (shape.isEmpty() || shape.any { it < 1 }) {
        throw InputException("shape must be one or more positive integers, got ${shape.contentToString()}")
    }
    val count = shape.fold(1L) { acc, d -> acc * d }
    if (count > Int.MAX_VALUE) {
        throw InputException("shape ${shape.contentToString()} has $count elements, more than an array holds")
    }
    return count.toInt()
}

private fun checkShape(
    shape: IntArray,
    size: Int,
) {
    val count = elementCount(shape)
    if (count != size) {
        throw InputException("shape ${shape.contentToString()} needs $count values, got $size")
    }
}

/** [rows] ([n_i, ...] each) stacked along the first dimension: [sum n_i, ...]. */
internal fun concatRows(rows: List<FloatTensor>): FloatTensor {
    val shape =
        rows
            .first()
            .shape
            .copyOf()
            .also { it[0] = rows.sumOf { row -> row.shape[0] } }
    val data = FloatArray(rows.sumOf { it.data.size })
    var offset = 0
    for (row in rows) {
        row.data.copyInto(data, offset)
        offset += row.data.size
    }
    return FloatTensor(shape, data)
}

/** Row [index] of [tensor] ([n, ...] -> [1, ...]). */
internal fun rowOf(
    tensor: FloatTensor,
    index: Int,
): FloatTensor {
    val size = tensor.data.size / tensor.shape[0]
    val shape = tensor.shape.copyOf().also { it[0] = 1 }
    return FloatTensor(shape, tensor.data.copyOfRange(index * size, (index + 1) * size))
}
