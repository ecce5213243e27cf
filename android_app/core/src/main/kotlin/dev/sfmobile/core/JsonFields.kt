package dev.sfmobile.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import java.math.BigDecimal

/**
 * Typed reads of one JSON object with JSON Schema's meaning of each type (draft 2020-12, as
 * Python's jsonschema applies it): an integer is any number without a fraction (2.0 counts), a
 * boolean is never a number. Every failure names the path of the value, e.g. `scheduler/beta_end`.
 */
internal class JsonFields(
    private val obj: JsonObject,
    val path: String,
    private val fail: (path: String, message: String) -> Nothing,
) {
    /** Refuse missing required keys and, when `closed`, keys not in `allowed`. */
    fun keys(
        required: List<String>,
        allowed: List<String> = required,
        closed: Boolean = true,
    ): JsonFields {
        required.firstOrNull { !obj.has(it) }?.let { fail(path, "'$it' is a required property") }
        if (closed) {
            obj.keySet().firstOrNull { it !in allowed }?.let { fail(path, "additional property '$it' is not allowed") }
        }
        return this
    }

    fun has(name: String): Boolean = obj.has(name)

    /** Fail naming the value at `name` below this object. */
    fun refuse(
        name: String,
        message: String,
    ): Nothing = fail(at(name), message)

    /** The object at `array[index]` (an element of the array `name`). */
    fun objectAt(
        name: String,
        index: Int,
    ): JsonFields =
        (array(name).get(index) as? JsonObject)?.let { JsonFields(it, at("$name/$index"), fail) }
            ?: refuse("$name/$index", "is not of type 'object'")

    fun element(name: String): JsonElement = obj.get(name) ?: JsonNull.INSTANCE

    fun at(name: String): String = if (path.isEmpty() || name.isEmpty()) path + name else "$path/$name"

    fun obj(name: String): JsonFields =
        (element(name) as? JsonObject)?.let { JsonFields(it, at(name), fail) } ?: fail(at(name), "is not of type 'object'")

    fun array(name: String): JsonArray = (element(name) as? JsonArray) ?: fail(at(name), "is not of type 'array'")

    fun string(name: String): String = stringOf(element(name), at(name))

    fun stringOf(
        value: JsonElement,
        where: String,
    ): String = (value as? JsonPrimitive)?.takeIf { it.isString }?.asString ?: fail(where, "is not of type 'string'")

    fun bool(name: String): Boolean =
        (element(name) as? JsonPrimitive)?.takeIf { it.isBoolean }?.asBoolean ?: fail(at(name), "is not of type 'boolean'")

    fun number(
        name: String,
        exclusiveMinimum: Double? = null,
    ): Double {
        val value = numberOf(element(name), at(name))
        if (!value.isFinite()) fail(at(name), "${element(name)} is not a finite JSON number (closure rule 11, export/README.md)")
        if (exclusiveMinimum != null && value <= exclusiveMinimum) fail(at(name), "$value must be > $exclusiveMinimum")
        return value
    }

    fun integer(
        name: String,
        minimum: Long? = null,
    ): Long = integerOf(element(name), at(name), minimum)

    fun integerOf(
        value: JsonElement,
        where: String,
        minimum: Long? = null,
    ): Long {
        val decimal = decimalOf(value, where)
        val integral = decimal.signum() == 0 || decimal.stripTrailingZeros().scale() <= 0
        if (!integral) fail(where, "$decimal is not of type 'integer'")
        val long = runCatching { decimal.toBigIntegerExact().longValueExact() }.getOrNull() ?: fail(where, "$decimal is out of range")
        if (minimum != null && long < minimum) fail(where, "$long is less than the minimum of $minimum")
        return long
    }

    /** A string from `allowed`. */
    fun enum(
        name: String,
        allowed: List<String>,
    ): String {
        val value = element(name)
        val text = (value as? JsonPrimitive)?.takeIf { it.isString }?.asString
        if (text == null || text !in allowed) refuse(name, "$value is not one of ${allowed.joinToString(", ", "[", "]") { "'$it'" }}")
        return text
    }

    /** A string from `allowed`, or JSON null. */
    fun enumOrNull(
        name: String,
        allowed: List<String>,
    ): String? = if (element(name).isJsonNull) null else enum(name, allowed)

    /** An integer equal to one of `allowed` (2.0 counts as 2; true does not). */
    fun intEnum(
        name: String,
        allowed: List<Long>,
    ): Long {
        val value = element(name)
        val number = (value as? JsonPrimitive)?.takeIf { it.isNumber }?.asBigDecimal
        val match = allowed.firstOrNull { number != null && number.compareTo(BigDecimal.valueOf(it)) == 0 }
        return match ?: fail(at(name), "$value is not one of $allowed")
    }

    fun entries(): Set<Map.Entry<String, JsonElement>> = obj.entrySet()

    /** A number held at `where` (an array element) that is at least `minimum`. */
    fun numberOf(
        value: JsonElement,
        where: String,
        minimum: Double,
    ): Double = numberOf(value, where).also { if (it < minimum) fail(where, "$it is less than the minimum of $minimum") }

    private fun numberOf(
        value: JsonElement,
        where: String,
    ): Double = decimalOf(value, where).toDouble()

    private fun decimalOf(
        value: JsonElement,
        where: String,
    ): BigDecimal = (value as? JsonPrimitive)?.takeIf { it.isNumber }?.asBigDecimal ?: fail(where, "$value is not of type 'number'")
}
