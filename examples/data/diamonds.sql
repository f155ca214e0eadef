-- ggplot2's diamonds as a DuckDB table, its ordered categoricals as ENUMs.
-- {parquet} is the path of diamonds.parquet beside this file.
CREATE OR REPLACE TABLE diamonds AS
SELECT carat,
       cut::ENUM('Fair', 'Good', 'Very Good', 'Premium', 'Ideal') AS cut,
       color::ENUM('J', 'I', 'H', 'G', 'F', 'E', 'D') AS color,
       clarity::ENUM('I1', 'SI2', 'SI1', 'VS2', 'VS1', 'VVS2', 'VVS1', 'IF') AS clarity,
       depth, "table", price::INTEGER AS price, x, y, z
FROM '{parquet}'
